// Preloaded into npm-distributed test servers (`node --import`): whatever address a
// server asks to listen on, it listens on 127.0.0.1 only, as every test server must.
import http from "node:http";

const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (port, ...rest) {
  const callback = rest.find((arg) => typeof arg === "function");
  return listen.call(this, port, "127.0.0.1", callback);
};
