import NIOCore
import NIOPosix

/// Tiny HTTP/1.1 real servers for `lvsd demo`: each answers every request with a fixed body
/// ("rs1 host!"), keeps connections alive unless asked not to, and needs no privileges.
public enum DemoBackends {
    final class Responder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let body: String
        private var pending: [UInt8] = []

        init(body: String) { self.body = body }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            pending += buffer.readBytes(length: buffer.readableBytes) ?? []
            // Answer each complete request head; requests here carry no body.
            while let end = Responder.headEnd(pending) {
                let head = String(decoding: pending[..<end], as: UTF8.self).lowercased()
                pending.removeFirst(end + 4)
                let close = head.contains("connection: close") || head.hasPrefix("get / http/1.0")
                let text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n"
                    + (close ? "Connection: close\r\n" : "") + "\r\n" + body
                let written = context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text)))
                if close {
                    let channel = context.channel
                    written.whenComplete { _ in channel.close(promise: nil) }
                    return
                }
            }
            if pending.count > 64 * 1024 { context.close(promise: nil) }
        }

        static func headEnd(_ bytes: [UInt8]) -> Int? {
            guard bytes.count >= 4 else { return nil }
            for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
                return i
            }
            return nil
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }

    /// Starts one responder on host:port answering `body`.
    public static func start(on group: EventLoopGroup, host: String, port: Int, body: String) -> EventLoopFuture<Channel> {
        ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Responder(body: body))
                }
            }
            .bind(host: host, port: port)
    }
}
