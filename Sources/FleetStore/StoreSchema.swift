/// The database schema and its migrations, versioned with `PRAGMA user_version`.
///
/// Migrations only ever add: a newer fleetwatch opens an older database by running the steps
/// it lacks, inside one transaction. An older fleetwatch refuses a newer database with a clear
/// error rather than writing to a shape it does not know. See docs/storage.md for what each
/// table and index serves.
enum StoreSchema {
    /// `migrations[i]` upgrades user_version i to i + 1.
    static let migrations: [String] = [
        // 0 -> 1: the first layout.
        """
        CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;

        -- Registry: one row per device, attributes of the message with the highest seq.
        CREATE TABLE devices(
            dev INTEGER PRIMARY KEY,
            device_id TEXT NOT NULL UNIQUE,
            first_seen_ms INTEGER NOT NULL,
            last_seen_ms INTEGER NOT NULL,
            last_received_ms INTEGER NOT NULL,
            attrs_seq INTEGER NOT NULL,
            first_seq INTEGER NOT NULL,
            sku TEXT NOT NULL, firmware TEXT NOT NULL, agent TEXT NOT NULL, accelerator TEXT NOT NULL,
            model_name TEXT NOT NULL, model_version TEXT NOT NULL, model_sha256 TEXT NOT NULL,
            cohort INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'unknown',
            state_changed_ms INTEGER);

        -- Cohorts: the label tuples rollups are kept for.
        CREATE TABLE cohorts(
            cohort INTEGER PRIMARY KEY,
            model_name TEXT NOT NULL, model_version TEXT NOT NULL, sku TEXT NOT NULL,
            firmware TEXT NOT NULL, accelerator TEXT NOT NULL,
            UNIQUE(model_name, model_version, sku, firmware, accelerator));

        -- Dedupe and gaps: the seq ranges received from each device.
        CREATE TABLE seq_ranges(dev INTEGER NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
            PRIMARY KEY(dev, from_seq)) WITHOUT ROWID;

        -- High-volume raw records: time-major keys, so a batch appends to the end of the tree
        -- (5x the insert rate of device-major keys, docs/storage.md). Per-device reads go to
        -- device_minute / device_hour; these tables serve retention, forensics and rebuilds.
        CREATE TABLE inference(
            ts_ms INTEGER NOT NULL, dev INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
            cohort INTEGER NOT NULL, window_ms INTEGER NOT NULL, count INTEGER NOT NULL, errors INTEGER NOT NULL,
            latency BLOB NOT NULL, hist BLOB NOT NULL, classes BLOB NOT NULL, input_stats BLOB,
            PRIMARY KEY(ts_ms, dev, seq, idx)) WITHOUT ROWID;
        CREATE TABLE resources(
            ts_ms INTEGER NOT NULL, dev INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
            cpu_pct REAL NOT NULL, mem_mb REAL NOT NULL, temp_c REAL NOT NULL, throttle_events INTEGER NOT NULL,
            PRIMARY KEY(ts_ms, dev, seq, idx)) WITHOUT ROWID;

        -- Sparse records: device-major keys (the timeline reads one device), plus a time index for
        -- fleet-wide windows and retention.
        CREATE TABLE sessions(
            dev INTEGER NOT NULL, ts_ms INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
            cohort INTEGER NOT NULL, session_id TEXT NOT NULL, status TEXT NOT NULL,
            duration_ms INTEGER NOT NULL, errors INTEGER NOT NULL,
            PRIMARY KEY(dev, ts_ms, seq, idx)) WITHOUT ROWID;
        -- Covering: fleet windows count terminal sessions and crashed devices from the index alone.
        CREATE INDEX sessions_ts ON sessions(ts_ms, status, dev, cohort);
        CREATE TABLE errors(
            dev INTEGER NOT NULL, ts_ms INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
            code TEXT NOT NULL, message TEXT NOT NULL,
            PRIMARY KEY(dev, ts_ms, seq, idx)) WITHOUT ROWID;
        CREATE INDEX errors_ts ON errors(ts_ms);
        CREATE TABLE deploys(
            dev INTEGER NOT NULL, ts_ms INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
            cohort INTEGER NOT NULL, from_version TEXT NOT NULL, to_version TEXT NOT NULL, result TEXT NOT NULL,
            PRIMARY KEY(dev, ts_ms, seq, idx)) WITHOUT ROWID;
        CREATE INDEX deploys_ts ON deploys(ts_ms);
        -- Registry changes (sku, firmware, model...) seen in seq order.
        CREATE TABLE changes(
            dev INTEGER NOT NULL, ts_ms INTEGER NOT NULL, seq INTEGER NOT NULL, field TEXT NOT NULL,
            old_value TEXT NOT NULL, new_value TEXT NOT NULL,
            PRIMARY KEY(dev, ts_ms, seq, field)) WITHOUT ROWID;
        CREATE INDEX changes_ts ON changes(ts_ms);

        -- Where each device was, in which cohort: one row per unbroken stretch of messages.
        -- Counts "devices seen in a window" per cohort without a row per message.
        CREATE TABLE presence(dev INTEGER NOT NULL, cohort INTEGER NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
            PRIMARY KEY(dev, cohort, first_ms)) WITHOUT ROWID;
        CREATE INDEX presence_last ON presence(last_ms);

        -- Rollups per cohort, maintained on write (merged in SQL by fw_* functions).
        CREATE TABLE rollup_minute(
            bucket INTEGER NOT NULL, cohort INTEGER NOT NULL,
            inferences INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
            latency BLOB, hist BLOB, classes BLOB,
            sessions_started INTEGER NOT NULL DEFAULT 0, sessions_exited INTEGER NOT NULL DEFAULT 0,
            sessions_crashed INTEGER NOT NULL DEFAULT 0, sessions_abnormal INTEGER NOT NULL DEFAULT 0,
            throttle_events INTEGER NOT NULL DEFAULT 0, resource_samples INTEGER NOT NULL DEFAULT 0,
            deploys_installed INTEGER NOT NULL DEFAULT 0, deploys_rolled_back INTEGER NOT NULL DEFAULT 0,
            deploys_failed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(bucket, cohort)) WITHOUT ROWID;
        CREATE TABLE rollup_hour(
            bucket INTEGER NOT NULL, cohort INTEGER NOT NULL,
            inferences INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
            latency BLOB, hist BLOB, classes BLOB,
            sessions_started INTEGER NOT NULL DEFAULT 0, sessions_exited INTEGER NOT NULL DEFAULT 0,
            sessions_crashed INTEGER NOT NULL DEFAULT 0, sessions_abnormal INTEGER NOT NULL DEFAULT 0,
            throttle_events INTEGER NOT NULL DEFAULT 0, resource_samples INTEGER NOT NULL DEFAULT 0,
            deploys_installed INTEGER NOT NULL DEFAULT 0, deploys_rolled_back INTEGER NOT NULL DEFAULT 0,
            deploys_failed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(bucket, cohort)) WITHOUT ROWID;

        -- Per device and minute (ranges up to 6 h) and per device and hour (longer ranges):
        -- time-major keys, so a batch dirties only the current bucket's pages.
        CREATE TABLE device_minute(
            bucket INTEGER NOT NULL, dev INTEGER NOT NULL,
            inferences INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0, latency BLOB,
            temp_sum REAL NOT NULL DEFAULT 0, temp_max REAL, cpu_sum REAL NOT NULL DEFAULT 0, mem_max REAL,
            resource_samples INTEGER NOT NULL DEFAULT 0, throttle_events INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(bucket, dev)) WITHOUT ROWID;
        CREATE TABLE device_hour(
            bucket INTEGER NOT NULL, dev INTEGER NOT NULL,
            inferences INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0, latency BLOB,
            temp_sum REAL NOT NULL DEFAULT 0, temp_max REAL, cpu_sum REAL NOT NULL DEFAULT 0, mem_max REAL,
            resource_samples INTEGER NOT NULL DEFAULT 0, throttle_events INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(bucket, dev)) WITHOUT ROWID;

        -- Rejected input, kept with its reason (never silently dropped).
        CREATE TABLE quarantine(
            id INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL, topic TEXT NOT NULL, device_id TEXT,
            reason TEXT NOT NULL, detail TEXT NOT NULL, payload BLOB NOT NULL, payload_bytes INTEGER NOT NULL);
        CREATE INDEX quarantine_device ON quarantine(device_id, received_ms);
        CREATE INDEX quarantine_received ON quarantine(received_ms);

        -- Ingest counters, committed with what they count.
        CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        """,
        // 1 -> 2: alert state (one row per alert instance, kept across restarts) and the
        // notification outbox (written before sending, removed on a 2xx).
        """
        CREATE TABLE alerts(
            fingerprint TEXT PRIMARY KEY, rule_group TEXT NOT NULL, alertname TEXT NOT NULL, severity TEXT NOT NULL,
            state TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL, value REAL,
            active_at INTEGER NOT NULL, fired_at INTEGER, resolved_at INTEGER, last_true_at INTEGER NOT NULL,
            last_sent_at INTEGER, last_sent_state TEXT, updated_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX alerts_state ON alerts(state, alertname);
        CREATE TABLE outbox(
            id INTEGER PRIMARY KEY, receiver TEXT NOT NULL, created_ms INTEGER NOT NULL, group_key TEXT NOT NULL,
            body BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL, last_error TEXT);
        CREATE INDEX outbox_due ON outbox(receiver, id);
        """,
        // 2 -> 3: alert history, one row per fired-and-resolved episode, kept with the hour
        // rollups (the alerts table keeps a resolved instance only 15 minutes, as Prometheus does).
        """
        CREATE TABLE alert_history(
            fingerprint TEXT NOT NULL, active_at INTEGER NOT NULL, rule_group TEXT NOT NULL, alertname TEXT NOT NULL,
            severity TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL, value REAL,
            fired_at INTEGER, resolved_at INTEGER NOT NULL,
            PRIMARY KEY(fingerprint, active_at)) WITHOUT ROWID;
        CREATE INDEX alert_history_resolved ON alert_history(resolved_at);
        INSERT OR IGNORE INTO alert_history
            SELECT fingerprint, active_at, rule_group, alertname, severity, labels, annotations, value, fired_at, resolved_at
            FROM alerts WHERE state = 'resolved' AND resolved_at IS NOT NULL;
        """,
        // 3 -> 4: no data change. From 4 on, a device's highest seq range row may end below its
        // highest stored seq (devices.attrs_seq), which is the true end: the writer no longer
        // rewrites that row for every message. Older fleetwatch versions, which would take the
        // row's end as exact (and store re-sent messages twice), refuse a version-4 database.
        """
        CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
        """,
        // 4 -> 5: the device journal. While ingest is behind, the writer holds per-device state
        // (registry times, seq ranges, presence, per-device windows) back and journals what it
        // needs to redo it after a crash (DeviceJournal); an older fleetwatch would ignore the
        // journal, so it refuses a version-5 database.
        """
        CREATE TABLE journal(batch INTEGER PRIMARY KEY, entries BLOB NOT NULL);
        """,
        // 5 -> 6: per-device hours are folded from their minutes once the hour is over
        // (`StoreWriter.foldDeviceHours`) instead of upserted with every flush; readers add the
        // minutes of hours not folded yet (FoldMark). Every hour with a row so far was written
        // whole, so all of them count as folded. An older fleetwatch would read the open hours'
        // missing rows as empty, so it refuses a version-6 database.
        """
        INSERT OR REPLACE INTO meta(key, value) VALUES('device_hour_open_from', coalesce((SELECT max(bucket) + 1 FROM device_hour), 0));
        INSERT OR REPLACE INTO meta(key, value) VALUES('device_hour_folded_dev', 0);
        """,
    ]

    static var currentVersion: Int { migrations.count }
}
