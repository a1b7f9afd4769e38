import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// A small eBPF assembler: instructions in `struct bpf_insn`'s layout (opcode; destination and
/// source registers; 16-bit offset; 32-bit immediate, little-endian), forward and backward jumps
/// to labels resolved by `finish`. Enough for the packet engine's programs, written in Swift so
/// that lvsd needs no compiler or object loader at run time.
public struct EBPFAssembler {
    public enum Register: UInt8, Sendable {
        case r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10
    }

    public enum Size: UInt8, Sendable {
        case word = 0x00, half = 0x08, byte = 0x10, double = 0x18
    }

    public enum ALU: UInt8, Sendable {
        case add = 0x00, sub = 0x10, mul = 0x20, or = 0x40, and = 0x50, lsh = 0x60, rsh = 0x70, xor = 0xA0, mov = 0xB0
    }

    public enum Condition: UInt8, Sendable {
        case equal = 0x10, greater = 0x20, greaterOrEqual = 0x30, anyBits = 0x40, notEqual = 0x50, less = 0xA0, lessOrEqual = 0xB0
    }

    public struct Label: Hashable, Sendable {
        fileprivate let id: Int
    }

    /// Helper function numbers (include/uapi/linux/bpf.h, `__BPF_FUNC_MAPPER`).
    public enum Helper: Int32, Sendable {
        case mapLookup = 1, mapUpdate = 2, mapDelete = 3, ktimeGetNanoseconds = 5, skbStoreBytes = 9
        case l3ChecksumReplace = 10, l4ChecksumReplace = 11, redirect = 23, skbLoadBytes = 26, ringbufOutput = 130
    }

    static let classLoad: UInt8 = 0x00, classLoadX: UInt8 = 0x01, classStore: UInt8 = 0x02, classStoreX: UInt8 = 0x03
    static let classALU64: UInt8 = 0x07, classJump: UInt8 = 0x05, classJump32: UInt8 = 0x06
    static let modeImmediate: UInt8 = 0x00, modeMemory: UInt8 = 0x60, modeAtomic: UInt8 = 0xC0
    static let sourceRegister: UInt8 = 0x08

    public private(set) var code: [UInt64] = []
    private var targets: [Int: Int] = [:]
    private var fixups: [(at: Int, label: Int)] = []
    private var labelCount = 0

    public init() {}

    public static func encode(_ opcode: UInt8, _ dst: Register, _ src: Register, _ offset: Int16, _ imm: Int32) -> UInt64 {
        UInt64(opcode) | UInt64(dst.rawValue | src.rawValue << 4) << 8 | UInt64(UInt16(bitPattern: offset)) << 16
            | UInt64(UInt32(bitPattern: imm)) << 32
    }

    private mutating func emit(_ opcode: UInt8, _ dst: Register = .r0, _ src: Register = .r0, _ offset: Int16 = 0, _ imm: Int32 = 0) {
        code.append(EBPFAssembler.encode(opcode, dst, src, offset, imm))
    }

    public mutating func label() -> Label {
        labelCount += 1
        return Label(id: labelCount)
    }

    /// The next instruction is `label`'s.
    public mutating func bind(_ label: Label) {
        precondition(targets[label.id] == nil, "label bound twice")
        targets[label.id] = code.count
    }

    // MARK: Arithmetic (64-bit)

    public mutating func alu(_ op: ALU, _ dst: Register, _ imm: Int32) {
        emit(EBPFAssembler.classALU64 | op.rawValue, dst, .r0, 0, imm)
    }

    public mutating func alu(_ op: ALU, _ dst: Register, _ src: Register) {
        emit(EBPFAssembler.classALU64 | op.rawValue | EBPFAssembler.sourceRegister, dst, src)
    }

    public mutating func mov(_ dst: Register, _ imm: Int32) { alu(.mov, dst, imm) }
    public mutating func mov(_ dst: Register, _ src: Register) { alu(.mov, dst, src) }

    // MARK: Memory

    /// dst = *(size *)(src + offset), zero-extended.
    public mutating func load(_ size: Size, _ dst: Register, _ src: Register, _ offset: Int16) {
        emit(EBPFAssembler.classLoadX | EBPFAssembler.modeMemory | size.rawValue, dst, src, offset)
    }

    /// *(size *)(dst + offset) = src.
    public mutating func store(_ size: Size, _ dst: Register, _ offset: Int16, _ src: Register) {
        emit(EBPFAssembler.classStoreX | EBPFAssembler.modeMemory | size.rawValue, dst, src, offset)
    }

    /// *(size *)(dst + offset) = imm.
    public mutating func store(_ size: Size, _ dst: Register, _ offset: Int16, imm: Int32) {
        emit(EBPFAssembler.classStore | EBPFAssembler.modeMemory | size.rawValue, dst, .r0, offset, imm)
    }

    /// *(u64 *)(dst + offset) += src, atomically.
    public mutating func atomicAdd(_ dst: Register, _ offset: Int16, _ src: Register) {
        emit(EBPFAssembler.classStoreX | EBPFAssembler.modeAtomic | Size.double.rawValue, dst, src, offset, 0)
    }

    /// r0 = *(u32 *)(dst + offset); and where that was r0's low 32 bits, *(u32 *)(dst + offset)
    /// = src, atomically (BPF_CMPXCHG).
    public mutating func atomicCompareExchange32(_ dst: Register, _ offset: Int16, _ src: Register) {
        emit(EBPFAssembler.classStoreX | EBPFAssembler.modeAtomic | Size.word.rawValue, dst, src, offset, 0xF1)
    }

    /// dst = the map whose descriptor is `fd` (a two-slot load the kernel resolves to the map).
    public mutating func loadMap(_ dst: Register, fd: Int32) {
        emit(EBPFAssembler.classLoad | EBPFAssembler.modeImmediate | Size.double.rawValue, dst, Register(rawValue: 1)!, 0, fd)
        emit(0)
    }

    // MARK: Control

    /// if dst <cond> imm (64-bit, imm sign-extended) goto label.
    public mutating func jump(_ cond: Condition, _ dst: Register, _ imm: Int32, _ label: Label) {
        fixups.append((code.count, label.id))
        emit(EBPFAssembler.classJump | cond.rawValue, dst, .r0, 0, imm)
    }

    /// if dst <cond> src (64-bit) goto label.
    public mutating func jump(_ cond: Condition, _ dst: Register, _ src: Register, _ label: Label) {
        fixups.append((code.count, label.id))
        emit(EBPFAssembler.classJump | cond.rawValue | EBPFAssembler.sourceRegister, dst, src, 0, 0)
    }

    /// if (u32)dst <cond> (u32)imm goto label.
    public mutating func jump32(_ cond: Condition, _ dst: Register, _ imm: UInt32, _ label: Label) {
        fixups.append((code.count, label.id))
        emit(EBPFAssembler.classJump32 | cond.rawValue, dst, .r0, 0, Int32(bitPattern: imm))
    }

    public mutating func jump(_ label: Label) {
        fixups.append((code.count, label.id))
        emit(EBPFAssembler.classJump)
    }

    public mutating func call(_ helper: Helper) {
        emit(EBPFAssembler.classJump | 0x80, .r0, .r0, 0, helper.rawValue)
    }

    public mutating func exit() {
        emit(EBPFAssembler.classJump | 0x90)
    }

    /// The program, its jumps resolved.
    public func finish() -> [UInt64] {
        var out = code
        for (at, id) in fixups {
            guard let target = targets[id] else { preconditionFailure("jump to an unbound label") }
            let offset = target - (at + 1)
            precondition(offset >= Int(Int16.min) && offset <= Int(Int16.max), "jump out of range")
            out[at] = out[at] & ~(UInt64(0xFFFF) << 16) | UInt64(UInt16(bitPattern: Int16(offset))) << 16
        }
        return out
    }
}

/// Why the kernel refused an eBPF object.
public struct EBPFError: Error, CustomStringConvertible {
    public var operation: String
    public var errno: Int32
    /// The verifier's last lines, for a refused program.
    public var log: String = ""

    public var description: String {
        let reason = String(cString: strerror(errno))
        return log.isEmpty ? "\(operation): \(reason)" : "\(operation): \(reason)\n\(log)"
    }
}

/// A BPF hash map with fixed-size keys and values, owned by this process (closed with it).
public final class EBPFHashMap: @unchecked Sendable {
    // @unchecked Sendable: the descriptor is immutable; the kernel serialises element operations.
    public let fd: Int32
    public let keySize: Int
    public let valueSize: Int
    public let capacity: Int

    /// `preallocated: false` takes kernel memory per element instead of all at once.
    public init(keySize: Int, valueSize: Int, capacity: Int, preallocated: Bool = true) throws {
        let fd = lvs_bpf_map_create(1 /* BPF_MAP_TYPE_HASH */, Int32(keySize), Int32(valueSize), Int32(capacity),
                                    preallocated ? 0 : 1 /* BPF_F_NO_PREALLOC */)
        guard fd >= 0 else { throw EBPFError(operation: "creating a BPF map", errno: -fd) }
        self.fd = fd
        self.keySize = keySize
        self.valueSize = valueSize
        self.capacity = capacity
    }

    deinit { close(fd) }

    /// Adds or replaces an element; the errno when refused (E2BIG when full).
    public func update(key: UnsafeRawPointer, value: UnsafeRawPointer) -> Int32 {
        lvs_bpf_map_update(fd, key, value, 0)
    }

    /// Adds an element unless the key has one already (BPF_NOEXIST); the errno when refused
    /// (EEXIST when there is one, E2BIG when full).
    public func insert(key: UnsafeRawPointer, value: UnsafeRawPointer) -> Int32 {
        lvs_bpf_map_update(fd, key, value, 1)
    }

    /// Copies an element's value into `value`; false when there is none.
    public func lookup(key: UnsafeRawPointer, into value: UnsafeMutableRawPointer) -> Bool {
        lvs_bpf_map_lookup(fd, key, value) == 0
    }

    /// Copies an element's value into `value` and removes the element; false when there is none.
    public func take(key: UnsafeRawPointer, into value: UnsafeMutableRawPointer) -> Bool {
        lvs_bpf_map_lookup_and_delete(fd, key, value) == 0
    }

    @discardableResult
    public func delete(key: UnsafeRawPointer) -> Bool {
        lvs_bpf_map_delete(fd, key) == 0
    }
}

/// A BPF array whose values this process also reaches in its own memory (BPF_F_MMAPABLE, kernel
/// 5.5 and later): programs and the process share them without a system call, so what both
/// write is to be written with atomics.
public final class EBPFSharedArray: @unchecked Sendable {
    // @unchecked Sendable: the mapping is fixed; what is written in it is the caller's to order.
    public let fd: Int32
    public let count: Int
    /// Bytes from one value to the next (the value size rounded up to 8).
    public let stride: Int
    public let base: UnsafeMutableRawPointer
    private let mappedBytes: Int

    public init(valueSize: Int, count: Int) throws {
        let fd = lvs_bpf_map_create(2 /* BPF_MAP_TYPE_ARRAY */, 4, Int32(valueSize), Int32(count), 1 << 10 /* BPF_F_MMAPABLE */)
        guard fd >= 0 else { throw EBPFError(operation: "creating a BPF array", errno: -fd) }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let stride = (valueSize + 7) & ~7
        let bytes = (stride * count + page - 1) / page * page
        guard let base = lvs_bpf_map_mmap(fd, UInt64(bytes)) else {
            let code = errno
            close(fd)
            throw EBPFError(operation: "mapping a BPF array", errno: code)
        }
        self.fd = fd
        self.count = count
        self.stride = stride
        self.base = base
        mappedBytes = bytes
    }

    deinit {
        lvs_bpf_map_munmap(base, UInt64(mappedBytes))
        close(fd)
    }

    /// Value `i` (0 ..< count).
    public func element(_ i: Int) -> UnsafeMutableRawPointer {
        precondition(i >= 0 && i < count)
        return base + i * stride
    }
}

/// A BPF ring buffer (kernel 5.8 and later) that programs write records of one size into
/// (bpf_ringbuf_output) and one thread reads, without a system call, from its mapping. Its
/// descriptor is readable (epoll) when records wait.
public final class EBPFRingBuffer: @unchecked Sendable {
    // @unchecked Sendable: `read` is for one thread at a time (it moves the consumer position);
    // the rest is immutable.
    public let fd: Int32
    public let recordSize: Int
    private var ring = lvs_ringbuf()

    /// `size`: bytes of records, a power of two and a multiple of the page size.
    public init(size: Int, recordSize: Int) throws {
        let fd = lvs_bpf_map_create(27 /* BPF_MAP_TYPE_RINGBUF */, 0, 0, Int32(size), 0)
        guard fd >= 0 else { throw EBPFError(operation: "creating a BPF ring buffer", errno: -fd) }
        let code = lvs_ringbuf_map(fd, UInt64(size), &ring)
        guard code == 0 else {
            close(fd)
            throw EBPFError(operation: "mapping a BPF ring buffer", errno: code)
        }
        self.fd = fd
        self.recordSize = recordSize
    }

    deinit {
        lvs_ringbuf_unmap(&ring)
        close(fd)
    }

    /// Copies up to `count` waiting records into `out` (room for `count` records) and frees them;
    /// how many were copied.
    public func read(into out: UnsafeMutableRawPointer, count: Int) -> Int {
        Int(lvs_ringbuf_read(&ring, out, Int32(count), Int32(recordSize)))
    }
}

/// A loaded eBPF program (closed with this object; attachments hold their own reference).
public final class EBPFProgram: @unchecked Sendable {
    // @unchecked Sendable: an immutable descriptor.
    public let fd: Int32

    public enum Kind: Int32, Sendable {
        case socketFilter = 1
        case schedClassifier = 3
    }

    /// BPF_TCX_INGRESS (kernel 6.6 and later).
    public static let tcxIngress: Int32 = 46

    public init(_ kind: Kind, _ code: [UInt64], expectedAttach: Int32 = 0) throws {
        let logSize = 1 << 16
        var log = [CChar](repeating: 0, count: logSize)
        let fd = code.withUnsafeBufferPointer { insns in
            log.withUnsafeMutableBufferPointer { lvs_bpf_prog_load(kind.rawValue, expectedAttach, insns.baseAddress, Int32(insns.count), $0.baseAddress, Int32(logSize)) }
        }
        guard fd >= 0 else {
            let text = log.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let tail = text.split(separator: "\n").suffix(12).joined(separator: "\n")
            throw EBPFError(operation: "loading a BPF program", errno: -fd, log: tail)
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Attaches the program to `interface`'s ingress (tcx) until the returned link is closed.
    public func attachIngress(_ interface: Int32) throws -> EBPFLink {
        let fd = lvs_bpf_link_create(self.fd, interface, EBPFProgram.tcxIngress)
        guard fd >= 0 else { throw EBPFError(operation: "attaching a BPF program to interface \(interface)", errno: -fd) }
        return EBPFLink(fd: fd)
    }

    /// Makes the program `socket`'s filter (replacing any it had); the errno when refused.
    public func attach(toSocket socket: Int32) -> Int32 {
        lvs_attach_bpf(socket, fd)
    }
}

/// A program's attachment: it holds while this object lives (and while the process does).
public final class EBPFLink: @unchecked Sendable {
    // @unchecked Sendable: an immutable descriptor.
    let fd: Int32

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }
}

extension EBPFProgram {
    /// Runs the program once on `frame` in the kernel (BPF_PROG_TEST_RUN, for tests): its return
    /// value and the frame as the program left it.
    public func testRun(_ frame: [UInt8]) throws -> (result: UInt32, frame: [UInt8]) {
        var out = [UInt8](repeating: 0, count: frame.count + 256)
        var length = Int32(out.count)
        var result: UInt32 = 0
        let code = frame.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { lvs_bpf_prog_test_run(fd, input.baseAddress, Int32(input.count), $0.baseAddress, &length, &result) }
        }
        guard code == 0 else { throw EBPFError(operation: "running a BPF program", errno: code) }
        return (result, Array(out.prefix(Int(length))))
    }
}
