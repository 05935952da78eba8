-- Loaded by every wrk run (bench/lib.mjs): the request's header lines in one
-- fixed order, Host first and the rest by name. wrk's own wrk.format() writes
-- them in the order of a Lua table walk, which changes from one wrk process to
-- the next: with two headers (Host, Authorization) a round sent either order at
-- random, each order gave Node's req.headers objects another hidden class, and
-- every round that brought the other order deoptimized the gateway's request
-- path (parserOnIncoming, RequestContext, checkRequest, upstreamRequestHeaders,
-- ...) and had it recompiled under load. Targets that get only Host (the
-- upstream, nginx, the bare proxy) never saw that. wrk.init() builds its one
-- static request with wrk.format(), looked up when called: replacing it here
-- keeps the request static (no Lua call per request).
function wrk.format(method, path, headers, body)
  method = method or wrk.method
  path = path or wrk.path
  headers = headers or wrk.headers
  body = body or wrk.body
  headers["Content-Length"] = body and string.len(body)
  local names = {}
  for name in pairs(headers) do
    if name ~= "Host" then names[#names + 1] = name end
  end
  table.sort(names)
  local s = { string.format("%s %s HTTP/1.1", method, path) }
  if headers["Host"] then s[#s + 1] = string.format("Host: %s", headers["Host"]) end
  for _, name in ipairs(names) do s[#s + 1] = string.format("%s: %s", name, headers[name]) end
  s[#s + 1] = ""
  s[#s + 1] = body or ""
  return table.concat(s, "\r\n")
end
