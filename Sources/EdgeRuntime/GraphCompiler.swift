/// Lowers the optimized graph IR to kernels and plans all memory at load.
///
/// Shapes are fully static once the batch size is fixed (a symbolic first input dim becomes
/// `batch`). Every node whose inputs are all constant runs once here and becomes a constant.
/// Reshape, Flatten, Identity and same-type Cast are aliases: no kernel, no copy. The planner
/// then gives each value a region of one session-wide allocation, reusing a region after the
/// last reader of its value ran (regions are reused only for the same element type).
struct GraphCompiler {
    struct Value {
        var name: String
        var type: ElementType
        var shape: [Int]
        var constant: HostTensor?
        /// The value whose region this one shares (set for aliases).
        var aliasOf: Int?
        var count: Int { product(shape) }
    }

    /// Offsets chosen by the planner, handed to each kernel's builder.
    struct Layout {
        var offsets: [Int]
        var scratch: [Int]
        func off(_ v: Int) -> Int { offsets[v] }
    }

    typealias Build = (_ layout: Layout, _ inputs: [Int], _ outputs: [Int], _ scratch: [Int]) -> any Kernel

    struct Step {
        var label: String
        var inputs: [Int]
        var outputs: [Int]
        var scratch: [(ElementType, Int)]
        var build: Build
    }

    /// What lowering a node gives.
    enum Lowered {
        /// The output shares input 0's region (Reshape, Flatten, Identity).
        case alias(ElementType, [Int])
        /// An output that is a constant known now (Constant-like).
        case constant(HostTensor)
        /// `packed`: input positions the kernel took at load (weights, scales); they get no
        /// session memory.
        case kernel(outputs: [(ElementType, [Int])], scratch: [(ElementType, Int)], packed: Set<Int> = [], build: Build)
    }

    let batch: Int
    /// Keep int8 weights as int8 panels (see CompiledModel.init).
    let compactInt8: Bool
    /// The kernel variant every kernel built here calls (picked once, at load).
    let kernels: KernelSet
    var values: [Value] = []
    var byName: [String: Int] = [:]
    var steps: [Step] = []
    var inputIDs: [Int] = []
    var outputIDs: [Int] = []

    init(batch: Int, compactInt8: Bool = false, kernels: KernelSet = .preferred) {
        self.batch = batch
        self.compactInt8 = compactInt8
        self.kernels = kernels
    }

    // MARK: - Values

    mutating func add(_ v: Value) -> Int {
        values.append(v)
        byName[v.name] = values.count - 1
        return values.count - 1
    }

    func root(_ v: Int) -> Int {
        var r = v
        while let a = values[r].aliasOf { r = a }
        return r
    }

    // MARK: - Compile

    mutating func compile(_ graph: IRGraph) throws {
        for info in graph.inputs {
            var shape: [Int] = []
            for (i, d) in info.dims.enumerated() {
                if let d { shape.append(d) } else if i == 0 { shape.append(batch) } else {
                    throw ModelError(.unsupportedFeature, "input '\(info.name)' has a symbolic dim at position \(i); only the first (batch) dim may be symbolic")
                }
            }
            inputIDs.append(add(Value(name: info.name, type: info.type, shape: shape)))
        }
        for (name, t) in graph.constants where byName[name] == nil {
            _ = add(Value(name: name, type: t.type, shape: t.shape, constant: t))
        }
        for node in graph.nodes {
            var ins: [Int] = []
            for (i, name) in node.inputs.enumerated() {
                if name.isEmpty { ins.append(-1); continue }
                guard let id = byName[name] else {
                    throw ModelError(.malformed, "node \(node.label): input \(i) '\(name)' is not produced by any earlier node")
                }
                ins.append(id)
            }
            while ins.last == -1 { ins.removeLast() }
            let lowered = try lower(node, ins)
            try place(node, ins, lowered)
        }
        for info in graph.outputs {
            guard let id = byName[info.name] else {
                throw ModelError(.malformed, "graph output '\(info.name)' is not produced by any node")
            }
            outputIDs.append(id)
        }
    }

    private mutating func place(_ node: IRNode, _ ins: [Int], _ lowered: Lowered) throws {
        switch lowered {
        case .alias(let type, let shape):
            let src = ins[0]
            var v = Value(name: node.outputs[0], type: type, shape: shape)
            if let c = values[src].constant {
                v.constant = HostTensor(type: type, shape: shape, values: c.values)
            } else {
                v.aliasOf = root(src)
            }
            _ = add(v)
        case .constant(let t):
            _ = add(Value(name: node.outputs[0], type: t.type, shape: t.shape, constant: t))
        case .kernel(let outs, let scratch, let packed, let build):
            var outIDs: [Int] = []
            for (i, (type, shape)) in outs.enumerated() {
                let name = i < node.outputs.count && !node.outputs[i].isEmpty ? node.outputs[i] : "\(node.name)::unused\(i)"
                outIDs.append(add(Value(name: name, type: type, shape: shape)))
            }
            let read = ins.enumerated().filter { $0.element >= 0 && !packed.contains($0.offset) }.map(\.element)
            let step = Step(label: node.label, inputs: read, outputs: outIDs, scratch: scratch, build: build)
            if step.inputs.allSatisfy({ values[$0].constant != nil }) {
                let results = fold(step, ins: ins)
                for (id, t) in zip(outIDs, results) { values[id].constant = t }
            } else {
                steps.append(step)
            }
        }
    }

    /// Runs a step whose inputs are all constant, once, on temporary memory.
    private func fold(_ step: Step, ins: [Int]) -> [HostTensor] {
        var offsets = Array(repeating: 0, count: values.count)
        var top = 0
        var regions: [(Int, ElementType, Int)] = []
        func place(_ type: ElementType, _ count: Int) -> Int {
            let off = top
            top += (max(count, 1) * type.size + 63) / 64 * 64
            regions.append((off, type, max(count, 1)))
            return off
        }
        for v in Set(step.inputs + step.outputs) { offsets[v] = place(values[v].type, values[v].count) }
        let scratch = step.scratch.map { place($0.0, $0.1) }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(top, 64), alignment: 64)
        defer { raw.deallocate() }
        for (off, type, count) in regions { bind(raw + off, type, count) }
        let mem = Memory(base: raw)
        for v in step.inputs {
            let c = values[v].constant!
            for (i, x) in c.values.enumerated() { writeElement(mem, c.type, offsets[v], i, x) }
        }
        let kernel = step.build(Layout(offsets: offsets, scratch: scratch), ins, step.outputs, scratch)
        kernel.run(mem)
        return step.outputs.map { v in
            HostTensor(type: values[v].type, shape: values[v].shape, values: (0..<values[v].count).map { readElement(mem, values[v].type, offsets[v], $0) })
        }
    }

    // MARK: - Plan

    struct Plan {
        var kernels: [any Kernel]
        var labels: [String]
        var bytes: Int
        var regions: [Region]
        var constants: [(offset: Int, tensor: HostTensor)]
        var offsets: [Int]
    }

    struct Region: Sendable {
        var offset: Int
        var type: ElementType
        var count: Int
    }

    func plan() -> Plan {
        // Liveness: walk back from the outputs.
        var needed = Set(outputIDs.map { root($0) })
        var live = Array(repeating: false, count: steps.count)
        for s in stride(from: steps.count - 1, through: 0, by: -1) where steps[s].outputs.contains(where: { needed.contains($0) }) {
            live[s] = true
            for v in steps[s].inputs { needed.insert(root(v)) }
        }
        var offsets = Array(repeating: -1, count: values.count)
        var regions: [Region] = []
        var top = 0
        var constants: [(Int, HostTensor)] = []
        func newRegion(_ type: ElementType, _ count: Int) -> Int {
            let off = top
            top += (max(count, 1) * type.size + 63) / 64 * 64
            regions.append(Region(offset: off, type: type, count: max(count, 1)))
            return off
        }
        // Constants read by a live kernel or returned as outputs live for the whole session.
        var constantUse = Set<Int>()
        for (s, step) in steps.enumerated() where live[s] { for v in step.inputs where values[root(v)].constant != nil { constantUse.insert(root(v)) } }
        for v in outputIDs where values[root(v)].constant != nil { constantUse.insert(root(v)) }
        for v in constantUse.sorted() {
            offsets[v] = newRegion(values[v].type, values[v].count)
            constants.append((offsets[v], values[v].constant!))
        }
        // Last use of each root (outputs: never freed).
        var lastUse = [Int: Int]()
        for (s, step) in steps.enumerated() where live[s] {
            for v in step.inputs { lastUse[root(v)] = s }
            for v in step.outputs where lastUse[v] == nil { lastUse[v] = s }
        }
        for v in outputIDs { lastUse[root(v)] = Int.max }
        for v in inputIDs where lastUse[v] == nil { lastUse[v] = -1 }

        var free: [ElementType: [(offset: Int, capacity: Int)]] = [:]
        func allocate(_ type: ElementType, _ count: Int) -> Int {
            let need = max(count, 1)
            if var list = free[type], let best = list.indices.filter({ list[$0].capacity >= need }).min(by: { list[$0].capacity < list[$1].capacity }) {
                let off = list[best].offset
                list.remove(at: best)
                free[type] = list
                return off
            }
            return newRegion(type, need)
        }
        func release(_ v: Int) {
            let r = regions.first { $0.offset == offsets[v] }!
            free[values[v].type, default: []].append((offsets[v], r.count))
        }
        for v in inputIDs where offsets[v] < 0 { offsets[v] = allocate(values[v].type, values[v].count) }
        for v in inputIDs where lastUse[v] == -1 { release(v) }
        var kernels: [any Kernel] = []
        var labels: [String] = []
        for (s, step) in steps.enumerated() where live[s] {
            for v in step.outputs { offsets[v] = allocate(values[v].type, values[v].count) }
            let scratch = step.scratch.map { allocate($0.0, $0.1) }
            for (i, off) in scratch.enumerated() { free[step.scratch[i].0, default: []].append((off, regions.first { $0.offset == off }!.count)) }
            var resolved = offsets
            for v in values.indices where values[v].aliasOf != nil { resolved[v] = offsets[root(v)] }
            // Builders see final offsets for everything they touch.
            kernels.append(step.build(Layout(offsets: resolved, scratch: scratch), step.inputs, step.outputs, scratch))
            labels.append(step.label)
            var done = Set<Int>()
            for v in step.inputs + step.outputs where lastUse[root(v)] == s && values[root(v)].constant == nil {
                if done.insert(root(v)).inserted { release(root(v)) }
            }
        }
        for v in values.indices where values[v].aliasOf != nil { offsets[v] = offsets[root(v)] }
        return Plan(kernels: kernels, labels: labels, bytes: max(top, 64), regions: regions, constants: constants, offsets: offsets)
    }
}

/// Binds `count` elements at `p` to the Swift type of `type` (bool is stored as UInt8).
func bind(_ p: UnsafeMutableRawPointer, _ type: ElementType, _ count: Int) {
    switch type {
    case .float: p.bindMemory(to: Float.self, capacity: count)
    case .double: p.bindMemory(to: Double.self, capacity: count)
    case .uint8, .bool: p.bindMemory(to: UInt8.self, capacity: count)
    case .int8: p.bindMemory(to: Int8.self, capacity: count)
    case .int32: p.bindMemory(to: Int32.self, capacity: count)
    case .int64: p.bindMemory(to: Int64.self, capacity: count)
    }
}
