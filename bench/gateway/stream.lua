-- wrk script: the same streamed chat completion of 64 tokens on every connection (for a real
-- replica behind the gateway; the body is read whole, as a client reading the stream would).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "none")
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":64,"stream":true}'
