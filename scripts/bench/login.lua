-- wrk script: full logins (form POST, Argon2id verification, new session) as fast as they go.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Sec-Fetch-Site"] = "same-origin"
wrk.body = "username=bench-user&password=bench-password-123&next=%2Fsuccess"

-- wrk prints "Non-2xx or 3xx responses: N" if any login was refused; a full login answers 303.
