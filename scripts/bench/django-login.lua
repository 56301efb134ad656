-- wrk script: full Django logins (form POST with the CSRF pair, Argon2id verification, a new session
-- row). scripts/bench.sh takes the pair from one anonymous GET /login/: the csrftoken cookie and the
-- form's masked token match for every post, since wrk sends that same cookie each time.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = "csrftoken=" .. os.getenv("DJANGO_CSRF_COOKIE")
wrk.body = "csrfmiddlewaretoken=" .. os.getenv("DJANGO_CSRF_TOKEN")
  .. "&username=bench-user&password=bench-password-123&next=%2Fsuccess%2F"

-- A full login answers 302; a refused one re-renders the form with 200, so the script counts answers
-- that are not redirects, and bench.sh shows them with the errors.
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function() not_redirect = 0 end
response = function(status) if status ~= 302 then not_redirect = not_redirect + 1 end end
done = function()
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("not_redirect") end
  io.write(string.format("Not redirected: %d\n", n))
end
