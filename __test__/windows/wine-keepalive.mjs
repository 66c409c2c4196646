// Preloaded into every node.exe of the Windows lane under Wine only (scripts/test-windows.mjs puts
// `--import` of this file in NODE_OPTIONS); never on Windows, never in the package.
//
// Why: undici (Node's global `fetch`) calls `socket.setKeepAlive(true, 60e3)` right after
// `net.connect()`, before the connection exists. libuv on Windows then applies keep-alive when it
// creates the socket for the connect: `setsockopt(IPPROTO_TCP, TCP_KEEPALIVE)`, which Wine 8.0's
// ws2_32 does not implement ("fixme:winsock:setsockopt Unknown IPPROTO_TCP optname 0x00000003",
// WSAENOPROTOOPT), and libuv fails the connect with it, translated to `connect UNKNOWN`. So every
// undici request fails under Wine 8, the first one included; `node:http` (keep-alive set after
// the connect, where an error is ignored) and Windows itself are unaffected.
//
// The shim defers a keep-alive asked for while the socket is still connecting to its 'connect',
// as Node does for `net.connect({ keepAlive: true })`, so the lane runs the global fetch (the
// door users use) instead of a node:http stand-in.
import net from 'node:net';

const setKeepAlive = net.Socket.prototype.setKeepAlive;
net.Socket.prototype.setKeepAlive = function setKeepAliveAfterConnect(enable, initialDelay) {
  if (this.connecting) {
    this.once('connect', () => setKeepAlive.call(this, enable, initialDelay));
    return this;
  }
  return setKeepAlive.call(this, enable, initialDelay);
};
