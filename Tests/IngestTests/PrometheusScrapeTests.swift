import FleetCore
import FleetIngest
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The ingester is monitored like any other service: a real Prometheus scrapes /metrics.
@Suite struct PrometheusScrapeTests {
    @Test func prometheusScrapesTheIngester() throws {
        let prometheus = "/usr/bin/prometheus"
        try #require(FileManager.default.isExecutableFile(atPath: prometheus), "prometheus is not installed (scripts/setup.sh installs it)")
        let broker = try Broker()
        let tmp = TempDir()
        let metricsPort = try freePort()
        let ingester = try Ingester(broker: broker, db: tmp.db, extra: ["--metrics-listen", "127.0.0.1:\(metricsPort)"])
        defer {
            ingester.signal(SIGTERM)
            _ = ingester.wait()
        }
        let promPort = try freePort()
        let config = tmp.url.appendingPathComponent("prometheus.yml")
        try """
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            scrape_configs:
              - job_name: fleetwatch
                static_configs: [{targets: ["127.0.0.1:\(metricsPort)"]}]
            """.write(to: config, atomically: true, encoding: .utf8)
        let prom = try ChildProcess(prometheus, [
            "--config.file=\(config.path)", "--storage.tsdb.path=\(tmp.url.appendingPathComponent("tsdb").path)",
            "--web.listen-address=127.0.0.1:\(promPort)",
        ])
        defer {
            prom.signal(SIGTERM)
            _ = prom.wait()
        }
        var log = ""
        while !log.contains("Server is ready to receive web requests") {
            let d = prom.readStderr()
            if d.isEmpty { throw TestFailure("prometheus exited: \(log)") }
            log += String(decoding: d, as: UTF8.self)
        }
        let drain = Thread { while !prom.readStderr().isEmpty {} }
        drain.start()

        let fleet = try TestFleet(broker: broker)
        defer { fleet.stop() }
        for s: Int64 in 1...7 { try fleet.publish("scraped", s) }
        try fleet.publish("scraped", 8, bytes: Array("nope".utf8))
        try eventually("8 received") { try counters(tmp.db).received == 8 }

        func query(_ q: String) throws -> [[String: Any]] {
            let path = "/api/v1/query?query=" + (q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q)
            let body = try httpGet(port: promPort, path: path)
            let o = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            return ((o?["data"] as? [String: Any])?["result"] as? [[String: Any]]) ?? []
        }
        func value(_ q: String) throws -> String? {
            (try query(q).first?["value"] as? [Any])?.last as? String
        }
        try eventually(timeout: 30, "Prometheus sees the ingester's counters") {
            try value("fleetwatch_ingest_stored_total") == "7" && value("fleetwatch_ingest_quarantined_total{reason=\"invalid_json\"}") == "1"
        }
        #expect(try value("up{job=\"fleetwatch\"}") == "1")
        #expect(try value("fleetwatch_ingest_received_total") == "8")
        #expect(try value("fleetwatch_ingest_broker_connected") == "1")
        #expect(try query("fleetwatch_ingest_batch_commit_seconds_bucket").count == 12)
    }
}
