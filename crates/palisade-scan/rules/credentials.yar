// Credential and wallet theft: the places stealers read. Libraries legitimately read some of
// them (boto reads ~/.aws/credentials, keyring reads OS stores), so most of these count in full
// only when the same file can also send data out (needs = "network").

rule cred_browser_store {
  meta:
    id = "cred-browser-store"
    severity = "high"
    description = "Reads browser password, cookie or key stores (Chrome 'Login Data', 'Local State', Firefox logins.json/key4.db) and decrypts them."
    false_positives = "Browser automation and forensics tools."
    needs = "network"
  strings:
    $chrome = "Login Data" ascii wide
    $state = "Local State" ascii wide
    $cookies = /Network[\\\/]+Cookies/ ascii wide
    $ff1 = "logins.json" ascii wide
    $ff2 = "key4.db" ascii wide
    $dpapi = "CryptUnprotectData" ascii wide
    $ud = /(Chrome|Chromium|Edge|Brave[-_ ]Browser|Opera Software|Yandex)[\\\/]+(User Data|Opera Stable)/ nocase ascii wide
  condition:
    ($chrome and ($state or $dpapi or $ud)) or ($ff1 and $ff2) or ($dpapi and $ud) or ($cookies and $ud)
}

rule cred_discord_token {
  meta:
    id = "cred-discord-token"
    severity = "high"
    description = "Reads Discord's local token storage (leveldb) or matches Discord token formats: a token grabber."
    false_positives = "Discord client tooling that manages the user's own tokens."
  strings:
    $ldb = /(discord|discordcanary|discordptb|Lightcord)[\\\/]+Local Storage[\\\/]+leveldb/ nocase ascii wide
    $re1 = "[\\w-]{24}\\.[\\w-]{6}\\.[\\w-]{27}" ascii
    $re2 = "dQw4w9WgXcQ:" ascii
    $re3 = "mfa\\.[\\w-]{84}" ascii
  condition:
    $ldb or $re2 or ($re1 and $re3)
}

rule cred_crypto_wallet {
  meta:
    id = "cred-crypto-wallet"
    severity = "high"
    description = "Reads cryptocurrency wallet files or browser-extension wallet storage (Exodus, Electrum, Atomic, MetaMask's extension id)."
    false_positives = "Wallet software itself."
  strings:
    $ = /(Exodus|Electrum|Atomic|Armory|Coinomi|Guarda|Jaxx)[\\\/]+(exodus\.wallet|wallets|Local Storage)/ nocase ascii wide
    $ = "nkbihfbeogaeaoehlefnkodbefgpgknn" ascii wide
    $ = "wallet.dat" ascii wide
  condition:
    any of them
}

rule cred_dev_secrets {
  meta:
    id = "cred-dev-secrets"
    severity = "medium"
    description = "Reads developer credential files (SSH private keys, cloud and registry credentials, .pypirc, .git-credentials, kube config)."
    false_positives = "Cloud SDKs and deployment tools read these to use them; they count fully only with network capability in the same file."
    needs = "network"
  strings:
    $ = /\.ssh[\\\/]+id_(rsa|ed25519|ecdsa|dsa)/ ascii wide
    $ = /\.aws[\\\/]+credentials/ ascii wide
    $ = ".pypirc" ascii wide
    $ = ".git-credentials" ascii wide
    $ = /\.docker[\\\/]+config\.json/ ascii wide
    $ = /\.kube[\\\/]+config/ ascii wide
    $ = /\.config[\\\/]+gcloud[\\\/]+(credentials\.db|application_default_credentials)/ ascii wide
  condition:
    2 of them
}
