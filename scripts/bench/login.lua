-- wrk script: full logins (form POST, Argon2id verification, new session) as fast as they go.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Sec-Fetch-Site"] = "same-origin"
wrk.body = "username=bench-user&password=bench-password-123&next=%2Fsuccess"

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write("status counts (last thread):\n")
  for s, n in pairs(statuses) do io.write(string.format("  %d: %d\n", s, n)) end
end
