// Obfuscation that benign open-source packages do not ship.

rule obf_pyarmor {
  meta:
    id = "obf-pyarmor"
    severity = "medium"
    description = "Code protected with PyArmor: unreadable to reviewers and scanners."
    false_positives = "Commercial packages protected with PyArmor."
  strings:
    $ = "__pyarmor__" ascii
    $ = "pyarmor_runtime" ascii
  condition:
    any of them
}

rule obf_known_obfuscator {
  meta:
    id = "obf-known-obfuscator"
    severity = "critical"
    description = "Output of a known malware-grade Python obfuscator or packer (BlankOBF, Hyperion, Kramer, pyobfuscate, lambda/zlib packers)."
    false_positives = "None known in open-source packages."
  strings:
    $ = /Obfuscated (with|by) (BlankOBF|Hyperion|Kramer|pyobfuscate|PyObfuscator|Specter|Pyarmor)/ nocase ascii
    $ = /_{2,}\s*=\s*eval\s*\(\s*["']\s*__import__/ ascii
    $ = /lambda\s+_{1,3}\s*:\s*__import__\(\s*['"]zlib['"]\s*\)\.decompress\(\s*_{1,3}\[::-1\]/ ascii
    $ = /exec\(\s*\(?\s*_{1,}\s*\)\s*\(\s*b['"]/ ascii
  condition:
    any of them
}

rule obf_exec_import_chain {
  meta:
    id = "obf-exec-import-chain"
    severity = "high"
    description = "exec/eval reached through __import__('builtins') or getattr on an imported module, a pattern used to hide the call from reviewers and scanners."
    false_positives = "Rare; code golf."
  strings:
    $a = /__import__\(\s*['"](builtins|__builtin__)['"]\s*\)\s*\.\s*(exec|eval|compile)/ ascii
    $b = /getattr\(\s*__import__\(\s*['"](builtins|__builtin__|os|subprocess)['"]\s*\)\s*,\s*['"](exec|eval|system|popen|Popen)['"]/ ascii
    $c = /__import__\(\s*['"](base64|zlib|marshal|codecs)['"]\s*\)\s*\.\s*(b64decode|b32decode|b85decode|decompress|loads|decode)\(/ ascii
    $d = /\b(exec|eval)\s*\(/ ascii
  condition:
    $a or $b or ($c and $d)
}
