-- ledger_bench.lua - wrk script for bench/ledger_bench.sh: single-transfer POSTs
-- (one signed, chained transaction each) spread over pairs of wallets, in
-- alternating directions so no wallet runs dry.
-- Environment: LEDGER_KEY (an admin API key), LEDGER_WALLETS (comma-separated,
-- an even number of wallet ids).
local wallets = {}
for w in string.gmatch(os.getenv("LEDGER_WALLETS") or "", "[^,]+") do
  wallets[#wallets + 1] = w
end
local npairs = math.floor(#wallets / 2)
local n = 0

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("LEDGER_KEY") or "")
wrk.headers["Content-Type"] = "application/json"

request = function()
  n = n + 1
  local p = n % npairs
  local a, b = wallets[2 * p + 1], wallets[2 * p + 2]
  if math.floor(n / npairs) % 2 == 1 then
    a, b = b, a
  end
  local body = '{"entries":[{"account":"' .. a .. '","amount":"0.01"},{"account":"' ..
               b .. '","amount":"-0.01"}]}'
  return wrk.format(nil, "/v1/ledger/transfers", nil, body)
end
