import FleetCore

/// One kind of device in the simulated fleet.
public struct SkuProfile: Sendable, Equatable {
    public var sku: String
    public var idPrefix: String
    public var accelerator: String
    public var firmwares: [String]
    /// Share of the fleet.
    public var share: Double
    /// Median batch-1 latency of the model on this hardware, milliseconds.
    public var medianLatencyMs: Double
    /// Idle temperature, °C.
    public var idleTempC: Double
    /// Sites these devices are installed at.
    public var sites: [String]
}

/// The identity and hardware of one simulated device. Pure data, fixed by the seed.
public struct DeviceSpec: Sendable, Equatable {
    public var index: Int
    public var deviceID: String
    public var profile: SkuProfile
    public var firmware: String
    public var site: String
    /// Uniform in [0, 1): the device's place in staged rollouts (smaller gets updates first).
    public var rolloutRank: Double
    /// Uniform in [0, 1): the device's place in outages (smaller drops first).
    public var outageRank: Double
    /// Seed of the device's own random stream (sessions, inputs, faults).
    public var seed: UInt64

    public var info: DeviceInfo {
        DeviceInfo(sku: profile.sku, firmware: firmware, agent: FleetPlan.agentVersion, accelerator: profile.accelerator)
    }
}

/// The heterogeneous fleet the simulator runs: several skus, firmwares, accelerators and sites.
///
/// `xavier-nx` cameras are all at site `dock-3`, so a site-wide change (the drift scenario's
/// new lighting) shows as one `model_version × sku` cohort, the grouping the shipped rules use.
public enum FleetPlan {
    public static let agentVersion = "sim-" + FleetVersion.string

    public static let profiles: [SkuProfile] = [
        SkuProfile(sku: "orin-nano-8g", idPrefix: "cam", accelerator: "gpu", firmwares: ["5.1.2", "5.1.3"], share: 0.35,
                   medianLatencyMs: 14, idleTempC: 48, sites: ["plant-1", "plant-2"]),
        SkuProfile(sku: "rpi5-hailo8", idPrefix: "edge", accelerator: "npu", firmwares: ["2.1.0", "2.2.0"], share: 0.25,
                   medianLatencyMs: 16, idleTempC: 52, sites: ["plant-1", "plant-2", "store-9"]),
        SkuProfile(sku: "xavier-nx", idPrefix: "cam", accelerator: "gpu", firmwares: ["4.6.4"], share: 0.2,
                   medianLatencyMs: 20, idleTempC: 45, sites: ["dock-3"]),
        SkuProfile(sku: "x86-gw", idPrefix: "gw", accelerator: "cpu", firmwares: ["1.8.0", "1.9.1"], share: 0.2,
                   medianLatencyMs: 6, idleTempC: 40, sites: ["plant-1", "plant-2", "store-9"]),
    ]

    /// `count` devices; the same seed and count give the same fleet. Skus are assigned by
    /// share with largest-remainder rounding, so even a small fleet has every sku.
    public static func devices(count: Int, seed: UInt64) -> [DeviceSpec] {
        precondition(count >= 1)
        var quotas = profiles.map { Int(Double(count) * $0.share) }
        var remainders = profiles.enumerated().map { (Double(count) * $0.element.share - Double(quotas[$0.offset]), $0.offset) }
        remainders.sort { $0.0 > $1.0 }
        var left = count - quotas.reduce(0, +)
        for (_, i) in remainders where left > 0 {
            quotas[i] += 1
            left -= 1
        }
        var out: [DeviceSpec] = []
        out.reserveCapacity(count)
        var rng = SplitMix64(seed: seed ^ 0x5EED_F1EE7)
        // Interleave skus so the first devices of a fleet cover every kind.
        var made = [Int](repeating: 0, count: profiles.count)
        var index = 0
        while index < count {
            for (p, profile) in profiles.enumerated() where made[p] < quotas[p] {
                made[p] += 1
                let firmware = profile.firmwares[Int(rng.next() % UInt64(profile.firmwares.count))]
                let site = profile.sites[Int(rng.next() % UInt64(profile.sites.count))]
                let id = "\(profile.idPrefix)-\(pad(index + 1, to: count >= 100_000 ? 6 : 5))"
                out.append(DeviceSpec(
                    index: index, deviceID: id, profile: profile, firmware: firmware, site: site,
                    rolloutRank: rng.unit(), outageRank: rng.unit(), seed: rng.next()))
                index += 1
            }
        }
        return out
    }

    static func pad(_ n: Int, to width: Int) -> String {
        let s = String(n)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
