// Windows-specific abuse: encoded PowerShell, UAC bypasses, defence evasion, persistence.

rule win_powershell_encoded {
  meta:
    id = "win-powershell-encoded"
    severity = "high"
    description = "Starts PowerShell with an encoded or hidden command, pipes a download into Invoke-Expression, or decodes a base64 payload and hands it to Invoke-Expression."
    false_positives = "Installers that shell out to PowerShell with plain, visible commands do not match."
  strings:
    $ps = "powershell" nocase ascii wide
    $enc = /\s-(e|ec|enc|enco|encod|encode|encoded|encodedc|encodedcommand)\s+[A-Za-z0-9+\/=]{20,}/ nocase ascii wide
    $hid = /-w(indowstyle)?\s+hidden/ nocase ascii wide
    $iex = /(iex|invoke-expression)\s*\(?\s*(\(?\s*new-object\s+net\.webclient|iwr|invoke-webrequest|irm|invoke-restmethod)/ nocase ascii wide
    $dl = /downloadstring\s*\(/ nocase ascii wide
    // A stager: a payload decoded from base64 and handed to Invoke-Expression.
    $from_b64 = /\[(system\.)?convert\]::frombase64string\s*\(/ nocase ascii wide
    $invoke = /\b(iex|invoke-expression)\b/ nocase ascii wide
  condition:
    $ps and ($enc or $iex or ($hid and $dl) or ($from_b64 and $invoke))
}

rule win_uac_bypass {
  meta:
    id = "win-uac-bypass"
    severity = "high"
    description = "Known UAC bypasses: hijacking ms-settings or exefile shell commands for fodhelper, computerdefaults, eventvwr or sdclt."
    false_positives = "None known in packages."
  strings:
    $reg = /(ms-settings|mscfile|exefile|Folder)\\+shell\\+open\\+command/ nocase ascii wide
    $bin = /(fodhelper|computerdefaults|eventvwr|sdclt|slui)\.exe/ nocase ascii wide
  condition:
    $reg and $bin
}

rule win_defender_evasion {
  meta:
    id = "win-defender-evasion"
    severity = "high"
    description = "Adds Windows Defender exclusions or disables real-time monitoring."
    false_positives = "None known in packages."
  strings:
    $ = /Add-MpPreference\s+-Exclusion(Path|Process|Extension)/ nocase ascii wide
    $ = /Set-MpPreference\s+-DisableRealtimeMonitoring/ nocase ascii wide
  condition:
    any of them
}

rule win_persistence {
  meta:
    id = "win-persistence"
    severity = "medium"
    description = "Writes to the Run registry keys or the Startup folder, or creates a scheduled task: persistence."
    false_positives = "Desktop applications that offer 'start at login'."
  strings:
    $ = /Software\\+Microsoft\\+Windows\\+CurrentVersion\\+Run/ nocase ascii wide
    $ = /Start Menu\\+Programs\\+Startup/ nocase ascii wide
    // The same folder put together by os.path.join.
    $ = /["']Start Menu["']\s*,\s*["']Programs["']\s*,\s*["']Startup["']/ nocase ascii wide
    $ = /schtasks(\.exe)?\s+\/create/ nocase ascii wide
  condition:
    any of them
}
