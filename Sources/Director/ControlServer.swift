import ControlAPI
import Foundation
import LVSCore
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Cuts the control stream into frames (4-byte length + JSON); a frame over the limit closes the
/// connection, so a client that sends garbage or a huge request only loses its own connection.
struct ControlFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    struct Oversized: Error {}

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let header = buffer.getBytes(at: buffer.readerIndex, length: 4) else { return .needMoreData }
        guard let length = ControlFraming.length(header) else { throw Oversized() }
        guard buffer.readableBytes >= 4 + length else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        guard let frame = buffer.readSlice(length: length) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }
}

/// Answers one request per connection: decodes it, has the director run it, writes the answer, closes.
final class ControlRequestHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let director: Director
    private var answered = false

    init(director: Director) { self.director = director }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        answered = true
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        guard let request = try? ControlFraming.decode(ControlRequest.self, from: bytes) else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        director.execute(request).whenComplete { result in
            let output = (try? result.get()) ?? IPVSAdmOutput(stderr: "lvsd: internal error\n", exitCode: 255)
            guard let framed = try? ControlFraming.encode(output) else {
                channel.close(promise: nil)
                return
            }
            channel.writeAndFlush(ByteBuffer(bytes: framed)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// The control socket's file: who answers on it, stale files, permissions.
enum ControlSocketFile {
    /// Whether a process accepts connections on the socket now.
    static func isAnswering(_ path: String) -> Bool {
        guard case .success(let fd) = UnixSocket.connect(path) else { return false }
        close(fd)
        return true
    }

    static func removeStale(_ path: String) { unlink(path) }

    /// New files owner-only while the socket is created (so there is no moment it is open to others).
    static func restrictUmask() -> mode_t { umask(0o077) }
    static func restoreUmask(_ previous: mode_t) { _ = umask(previous) }
    static func makePrivate(_ path: String) { chmod(path, 0o600) }
}
