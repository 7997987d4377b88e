// Download-and-run one-liners that appear as strings passed to a shell.

rule dropper_shell_pipe {
  meta:
    id = "dropper-shell-pipe"
    severity = "high"
    description = "A shell command that downloads and runs a script or binary (curl|sh, wget && chmod +x, certutil -urlcache, bitsadmin /transfer, mshta http)."
    false_positives = "Install scripts in docs; those weigh less in docs/."
  strings:
    // curl or wget piped into a shell, or followed by chmod, with a URL inside the command (the
    // condition checks that). The URL is a pattern of its own: a single regex with the URL in
    // its middle was verified at every URL of a file, tens of milliseconds on a lock file.
    $pipe = /(curl|wget)\s+[^|;\n]{0,400}\|\s*(sudo\s+)?(ba|z|da)?sh\b/ nocase ascii
    $chmod = /(curl|wget)\s+[^;\n]{0,400}(&&|;)\s*chmod\s+(\+x|[0-7]{3,4})/ nocase ascii
    // A `ctx_` pattern only qualifies the others; findings never point at it.
    $ctx_url = /https?:\/\// nocase ascii
    $certutil = /certutil(\.exe)?\s+(-|\/)urlcache\s+(-|\/)split\s+(-|\/)f\s+https?:/ nocase ascii wide
    $bitsadmin = /bitsadmin(\.exe)?\s+\/transfer\s+[^\n]{0,100}https?:/ nocase ascii wide
    $mshta = /mshta(\.exe)?\s+https?:\/\// nocase ascii wide
    // A base64 blob decoded straight into a shell.
    $base64 = /base64\s+(-d|--decode|-D)\s*\|\s*(sudo\s+)?(ba|z|da)?sh\b/ ascii
    // PowerShell: download to a file, then start it.
    $ps = /(invoke-webrequest|iwr|start-bitstransfer|downloadfile)[^\n]{0,300}(-outfile|-destination|,)[^\n]{0,300}(start-process|saps|&\s*\$|\.exe['"]?\s*;?\s*start)/ nocase ascii wide
  condition:
    any of ($certutil, $bitsadmin, $mshta, $base64, $ps)
    or for any i in (1..#pipe) : ($ctx_url in (@pipe[i] .. @pipe[i] + !pipe[i]))
    or for any i in (1..#chmod) : ($ctx_url in (@chmod[i] .. @chmod[i] + !chmod[i]))
}

rule dropper_reverse_shell {
  meta:
    id = "dropper-reverse-shell"
    severity = "critical"
    description = "A reverse shell: a socket duplicated onto stdin/stdout before spawning a shell, or /dev/tcp redirection."
    false_positives = "Penetration-testing tools."
  strings:
    $dup = /os\.dup2\(\s*[a-z_\.]+\.fileno\(\)\s*,\s*([0-2]|[a-z_]+)\s*\)/ ascii
    // The shell may sit in a string that is itself quoted (`python -c "...pty.spawn(\'/bin/sh\')"`).
    $sh = /(pty\.spawn|subprocess\.(call|Popen|run)|os\.system)\(\s*\[?\s*\\?["'](\/bin\/)?(ba|z|da)?sh\b/ ascii
    $tcp = /\/dev\/tcp\/[0-9a-z\.\-]+\/[0-9]{2,5}/ ascii
    $ps = /New-Object\s+System\.Net\.Sockets\.TCPClient\s*\([^)]{1,100}\)[\s\S]{0,400}GetStream\s*\(\)/ nocase ascii wide
  condition:
    ($dup and $sh) or $tcp or $ps
}

rule dropper_exec_remote_code {
  meta:
    id = "dropper-exec-remote-code"
    severity = "high"
    description = "Code that executes what it downloads (exec of urlopen/requests responses), also when written into a second-stage file as a string."
    false_positives = "None known in packages."
  strings:
    $a = /exec\(\s*[\w\.]*urlopen\s*\(/ ascii
    $b = /exec\(\s*requests\.get\([^)]{0,300}\)\.(text|content)/ ascii
    $c = /exec\(\s*urllib\.request\.urlopen\(/ ascii
  condition:
    any of them
}

rule dropper_embedded_executable {
  meta:
    id = "dropper-embedded-executable"
    severity = "high"
    description = "A Windows or Linux executable kept as base64 or hex text in source code: a program carried inside a script, to be written out and started."
    false_positives = "Test fixtures of binary-parsing libraries (weighted as tests)."
  strings:
    // The DOS header `MZ\x90\x00\x03\x00\x00\x00\x04\x00` and the ELF ident, as base64 text
    // at the start of a blob, and as hex.
    $pe_b64 = /["'\s(=]TVqQAAMAAAAEAAAA/ ascii
    $pe_b64_borland = /["'\s(=]TVpQAAIAAAAEAA8A/ ascii
    $elf_b64 = /["'\s(=]f0VMRg[EI]BAQ/ ascii
    $pe_hex = /["'\s(=]4d5a90000300000004000000/ nocase ascii
    $elf_hex = /["'\s(=]7f454c460[12]010[01]/ nocase ascii
  condition:
    // Text, not a binary that happens to hold these bytes.
    uint16(0) != 0x5a4d and uint32(0) != 0x464c457f and any of them
}
