-- wrk script: full logins spread over 32 accounts (bench-0 … bench-31), so the per-account burst that
-- guards against parallel guessing is not what refuses them.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Sec-Fetch-Site"] = "same-origin"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, "username=bench-" .. (n % 32) .. "&password=bench-password-123&next=%2Fsuccess")
end
