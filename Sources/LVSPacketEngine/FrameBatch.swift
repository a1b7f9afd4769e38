import LVSPacket
import LinuxNet

/// The buffers a packet thread works in: `count` slots of `stride` bytes that a batch of frames is
/// received into (each with headroom before it), and the list of frames to send next (a pointer
/// to each one's virtio_net_hdr, its length with it, and its interface). Owned by one thread.
final class FrameBatch {
    let count: Int
    let stride: Int
    let headroom: Int
    let buffer: UnsafeMutableRawBufferPointer
    let lengths: UnsafeMutablePointer<Int32>
    let flags: UnsafeMutablePointer<UInt32>
    private let outFrames: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>
    private let outLengths: UnsafeMutablePointer<Int32>
    private let outInterfaces: UnsafeMutablePointer<Int32>
    private(set) var queued = 0

    init(count: Int, stride: Int, headroom: Int) {
        self.count = count
        self.stride = stride
        self.headroom = headroom
        buffer = .allocate(byteCount: stride * count, alignment: 64)
        lengths = .allocate(capacity: count)
        flags = .allocate(capacity: count)
        outFrames = .allocate(capacity: count)
        outLengths = .allocate(capacity: count)
        outInterfaces = .allocate(capacity: count)
    }

    deinit {
        buffer.deallocate()
        lengths.deallocate()
        flags.deallocate()
        outFrames.deallocate()
        outLengths.deallocate()
        outInterfaces.deallocate()
    }

    /// Slot `i`: the frame received there starts at `headroom`.
    func slot(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffer[(i * stride)..<((i + 1) * stride)])
    }

    /// Fills the slots from `socket`; how many frames came.
    func receive(from socket: PacketSocket) throws -> Int {
        try socket.receive(into: buffer.baseAddress!, stride: stride, headroom: headroom, count: count, lengths: lengths, flags: flags)
    }

    /// Queues the frame whose virtio_net_hdr starts at `header` (`length` bytes with it); when the
    /// list is full it is sent first. Returns how many sends the kernel refused on the way.
    @discardableResult
    func queue(_ header: UnsafeMutableRawPointer, length: Int, interface: Int32, via sender: PacketSocket) -> Int {
        let failed = queued == count ? flush(via: sender) : 0
        outFrames[queued] = header.assumingMemoryBound(to: UInt8.self)
        outLengths[queued] = Int32(length)
        outInterfaces[queued] = interface
        queued += 1
        return failed
    }

    /// Queues a frame of slot `slot` that starts at `start` (its virtio_net_hdr just before).
    @discardableResult
    func queue(slot: UnsafeMutableRawBufferPointer, start: Int, length: Int, interface: Int32, via sender: PacketSocket) -> Int {
        queue(slot.baseAddress! + start - VirtioHeader.size, length: length + VirtioHeader.size, interface: interface, via: sender)
    }

    /// Sends what is queued; how many the kernel refused.
    @discardableResult
    func flush(via sender: PacketSocket) -> Int {
        guard queued > 0 else { return 0 }
        let failed = sender.send(outFrames, lengths: outLengths, interfaces: outInterfaces, count: queued)
        queued = 0
        return failed
    }
}
