import FleetCore
import Foundation

/// Parsers for the /proc and /sys files the `resources` record comes from. Pure: they take
/// the files' text, so tests feed them fixed samples.
public enum ProcParsers {
    /// Aggregate CPU time from the first line of /proc/stat, in clock ticks: `busy` excludes
    /// idle and iowait; guest time is already inside user/nice, so it is not added again.
    public struct CPUTimes: Sendable, Equatable {
        public var busy: UInt64
        public var total: UInt64

        public init(busy: UInt64, total: UInt64) {
            self.busy = busy
            self.total = total
        }
    }

    public static func cpuTimes(procStat: String) -> CPUTimes? {
        guard let line = procStat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let v = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard v.count >= 4 else { return nil }
        // user nice system idle iowait irq softirq steal (guest guest_nice are inside user/nice)
        let fields = Array(v.prefix(8))
        let total = fields.reduce(0, +)
        let idle = fields[3] + (fields.count > 4 ? fields[4] : 0)
        return CPUTimes(busy: total - idle, total: total)
    }

    /// Busy share of the whole machine between two samples, in percent [0, 100]; 0 when no
    /// time passed.
    public static func cpuPercent(from a: CPUTimes, to b: CPUTimes) -> Double {
        guard b.total > a.total, b.busy >= a.busy else { return 0 }
        return min(100, max(0, Double(b.busy - a.busy) / Double(b.total - a.total) * 100))
    }

    /// Memory in use on the device, MB (MiB): MemTotal - MemAvailable from /proc/meminfo.
    public static func memUsedMB(meminfo: String) -> Double? {
        var total: Double?
        var available: Double?
        for line in meminfo.split(separator: "\n") {
            if line.hasPrefix("MemTotal:") { total = kB(line) } else if line.hasPrefix("MemAvailable:") { available = kB(line) }
        }
        guard let total, let available else { return nil }
        return max(0, total - available) / 1024
    }

    /// The process's resident set, MB (MiB), from /proc/self/status VmRSS.
    public static func rssMB(status: String) -> Double? {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return kB(line).map { $0 / 1024 }
    }

    /// The hottest thermal zone, °C, from the millidegree values of thermal_zone*/temp; nil
    /// when there is no readable zone.
    public static func temperatureC(zoneTexts: [String]) -> Double? {
        let values = zoneTexts.compactMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }.map { Double($0) / 1000 }
            .filter { $0 > -273.15 && $0 < 1000 }
        return values.max()
    }

    private static func kB(_ line: Substring) -> Double? {
        line.split(separator: " ").dropFirst().first.flatMap { Double($0) }
    }
}

/// Samples the device's health for `resources` records from /proc and /sys.
///
/// - `cpu_pct`: busy share of the whole machine (all cores) since the previous sample, from
///   /proc/stat.
/// - `mem_mb`: memory in use on the device, MemTotal - MemAvailable (/proc/meminfo); the
///   process's VmRSS if MemAvailable is missing.
/// - `temp_c`: the hottest /sys/class/thermal/thermal_zone*/temp; 0 when the device has no
///   thermal zone (virtual machines), logged once at start.
/// - `throttle_events`: new thermal throttle events since the previous sample, summed over
///   /sys/devices/system/cpu/cpu*/thermal_throttle/{core,package}_throttle_count (x86); 0
///   where the kernel exposes none.
///
/// The root is a parameter so tests can point it at a fake tree.
public final class ResourceSampler {
    public let root: String
    private var lastCPU: ProcParsers.CPUTimes?
    private var lastThrottle: UInt64?
    public let thermalZones: [String]
    public let throttleFiles: [String]

    public init(root: String = "") {
        self.root = root
        let fm = FileManager.default
        let thermal = root + "/sys/class/thermal"
        thermalZones = ((try? fm.contentsOfDirectory(atPath: thermal)) ?? []).filter { $0.hasPrefix("thermal_zone") }.sorted()
            .map { "\(thermal)/\($0)/temp" }.filter { fm.isReadableFile(atPath: $0) }
        let cpus = root + "/sys/devices/system/cpu"
        throttleFiles = ((try? fm.contentsOfDirectory(atPath: cpus)) ?? []).filter { $0.hasPrefix("cpu") && $0.dropFirst(3).allSatisfy(\.isNumber) }.sorted()
            .flatMap { ["\(cpus)/\($0)/thermal_throttle/core_throttle_count", "\(cpus)/\($0)/thermal_throttle/package_throttle_count"] }
            .filter { fm.isReadableFile(atPath: $0) }
        lastCPU = read("/proc/stat").flatMap(ProcParsers.cpuTimes)
        lastThrottle = throttleTotal()
    }

    public var hasTemperature: Bool { !thermalZones.isEmpty }

    /// One sample; CPU and throttle events are measured since the previous sample (or since
    /// the sampler was made).
    public func sample(tsMs: Int64) -> ResourcesRecord {
        var cpu = 0.0
        if let now = read("/proc/stat").flatMap(ProcParsers.cpuTimes) {
            if let last = lastCPU { cpu = ProcParsers.cpuPercent(from: last, to: now) }
            lastCPU = now
        }
        let mem = read("/proc/meminfo").flatMap(ProcParsers.memUsedMB)
            ?? read("/proc/self/status").flatMap(ProcParsers.rssMB) ?? 0
        let temp = ProcParsers.temperatureC(zoneTexts: thermalZones.compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }) ?? 0
        var throttled: Int64 = 0
        if let t = throttleTotal() {
            if let last = lastThrottle, t >= last { throttled = Int64(t - last) }
            lastThrottle = t
        }
        return ResourcesRecord(tsMs: tsMs, cpuPct: cpu, memMB: min(1e9, mem), tempC: temp, throttleEvents: throttled)
    }

    private func read(_ path: String) -> String? {
        try? String(contentsOfFile: root + path, encoding: .utf8)
    }

    private func throttleTotal() -> UInt64? {
        guard !throttleFiles.isEmpty else { return nil }
        return throttleFiles.compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }
            .compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }.reduce(0, +)
    }
}
