#!/usr/bin/env python3
"""The naive baseline ingester of issue 4: paho-mqtt + json.loads + sqlite3 executemany.

Subscribes QoS 1 to fleet/+/telemetry, parses each payload with json.loads (no validation),
inserts one row per record in batches of 1000 with executemany, and exits after N messages,
printing the messages, the elapsed time from the first message received to the last commit,
and the process's CPU time (user + system) over its whole run.
usage: naive_ingester.py PORT DB N
"""
import json, sqlite3, sys, time
import paho.mqtt.client as mqtt

port, db_path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
db = sqlite3.connect(db_path)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS records(device TEXT, seq INTEGER, kind TEXT, ts INTEGER, body TEXT)")
rows, got, first = [], 0, None

def on_message(client, userdata, msg):
    global got, first, rows
    if first is None:
        first = time.monotonic()
    m = json.loads(msg.payload)
    for r in m["records"]:
        rows.append((m["device_id"], m["seq"], r["kind"], r["ts_ms"], json.dumps(r)))
    got += 1
    if got % 1000 == 0 or got == n:
        db.executemany("INSERT INTO records VALUES (?,?,?,?,?)", rows)
        db.commit()
        rows = []
    if got == n:
        client.disconnect()

def on_connect(client, userdata, flags, rc, props=None):
    client.subscribe("fleet/+/telemetry", qos=1)
    print("ready", flush=True)

client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="naive-ingester", protocol=mqtt.MQTTv311, clean_session=False)
client.on_message = on_message
client.on_connect = lambda c, u, f, rc, p: on_connect(c, u, f, rc, p)
client.connect("127.0.0.1", port)
client.loop_forever()
print(f"{got} {time.monotonic() - first:.3f} {time.process_time():.3f}", flush=True)
