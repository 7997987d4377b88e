// Exfiltration and command-and-control endpoints. Hard-coded *credentials* for chat webhooks are
// the tell: a library that implements the Discord or Telegram API carries the base URL, never a
// webhook id and token of its own.

rule exfil_discord_webhook {
  meta:
    id = "exfil-discord-webhook"
    severity = "critical"
    description = "A hard-coded Discord webhook (id and token): the most common exfiltration channel of PyPI stealers."
    false_positives = "Example webhooks in documentation; such files weigh less in docs/ and tests/."
  strings:
    $a = /discord(app)?\.com\/api\/(v[0-9]{1,2}\/)?webhooks\/[0-9]{17,20}\/[A-Za-z0-9_\-]{30,}/
  condition:
    $a
}

rule exfil_telegram_bot {
  meta:
    id = "exfil-telegram-bot"
    severity = "critical"
    description = "A hard-coded Telegram bot token in an API URL, used to send stolen data to a chat."
    false_positives = "Bots that ship their own token (bad practice, still worth review)."
  strings:
    $a = /api\.telegram\.org\/bot[0-9]{6,12}:[A-Za-z0-9_\-]{30,}/
    // A bot token on its own: the bot id starts at a word boundary, so a 10-digit id matches once.
    $b = /\b[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}\b/
  condition:
    $a or ($b and #b < 6)
}

rule exfil_request_catcher {
  meta:
    id = "exfil-request-catcher"
    severity = "medium"
    description = "A request-catching or out-of-band interaction service (Burp Collaborator, interactsh, pipedream, webhook.site, requestbin, canarytokens): where dependency-confusion probes report home."
    false_positives = "Security tooling that talks to these services by design."
    needs = "network"
  strings:
    $ = /[a-z0-9]{10,}\.(burpcollaborator\.net|oastify\.com|oast\.(pro|live|site|online|fun|me)|interact\.sh|interactsh\.com|dnslog\.cn|ceye\.io)/ nocase
    $ = /[a-z0-9\-]{6,}\.m\.pipedream\.net/ nocase
    $ = /webhook\.site\/[0-9a-f\-]{36}/ nocase
    $ = /(requestbin\.(net|com)|requestcatcher\.com|canarytokens\.com|beeceptor\.com|hookbin\.com|postb\.in)\// nocase
  condition:
    any of them
}

rule exfil_tunnel_or_paste {
  meta:
    id = "exfil-tunnel-or-paste"
    severity = "medium"
    description = "A URL on a tunnel, paste or anonymous file-drop service (ngrok, trycloudflare, serveo, pastebin raw, transfer.sh, anonfiles, gofile), used to host payloads or receive data."
    false_positives = "Development tools that integrate with ngrok or pastebin."
    needs = "network"
  strings:
    $ = /https?:\/\/[a-z0-9\-]+\.(ngrok\.io|ngrok-free\.app|ngrok-free\.dev|ngrok\.app|ngrok\.dev|trycloudflare\.com|serveo\.net|loca\.lt|localhost\.run|pinggy\.link|bore\.pub)/ nocase
    $ = /https?:\/\/(pastebin\.(com|pl)\/(raw|view\/raw)|paste\.ee\/r|hastebin\.com\/raw|rentry\.(co|org)\/[a-z0-9]+\/raw|transfer\.sh|anonfiles\.com|gofile\.io|bashupload\.com|0x0\.st|file\.io|filebin\.net|temp\.sh|paste\.c-net\.org|dpaste\.(com|org)\/[a-z0-9]+\/raw)/ nocase
    $ = /https?:\/\/(cdn|media)\.discordapp\.(com|net)\/attachments\/[0-9]{17,20}\// nocase
  condition:
    any of them
}

rule exfil_raw_ip_url {
  meta:
    id = "exfil-raw-ip-url"
    severity = "low"
    description = "A URL to a public IP address instead of a host name: typical of droppers and C2 servers."
    false_positives = "Clients of services that have no host name. Not matched: loopback, private (RFC 1918), shared (RFC 6598), link-local, this-network, benchmarking (RFC 2544), multicast and reserved ranges, the documentation ranges of RFC 5737 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), and the big public DNS resolvers."
  strings:
    $a = /https?:\/\/[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(:[0-9]{2,5})?\//
    $private = /https?:\/\/(127\.|10\.|0\.|192\.168\.|169\.254\.|172\.(1[6-9]|2[0-9]|3[01])\.|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.|192\.0\.[02]\.|198\.51\.100\.|203\.0\.113\.|198\.1[89]\.|22[4-9]\.|2[3-5][0-9]\.|1\.2\.3\.4[:\/]|1\.1\.1\.1[:\/]|1\.0\.0\.1[:\/]|8\.8\.[48]\.[48][:\/]|9\.9\.9\.9[:\/])/
  condition:
    #a > #private
}
