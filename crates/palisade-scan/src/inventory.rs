//! The inventory of what a distribution can do: the types a report keeps (see
//! [`crate::capabilities`] for how they are taken and compared).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `setup.py` that runs programs, uses the network or executes dynamic code; a `.pth` file
    /// with an executable line.
    InstallExec,
    Network,
    Process,
    DynamicCode,
    Obfuscation,
    CredentialAccess,
    Dependency,
    EntryPoint,
    PthFile,
}

impl Capability {
    pub const ALL: [Capability; 9] = [
        Capability::InstallExec,
        Capability::Network,
        Capability::Process,
        Capability::DynamicCode,
        Capability::Obfuscation,
        Capability::CredentialAccess,
        Capability::Dependency,
        Capability::EntryPoint,
        Capability::PthFile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::InstallExec => "install-exec",
            Capability::Network => "network",
            Capability::Process => "process",
            Capability::DynamicCode => "dynamic-code",
            Capability::Obfuscation => "obfuscation",
            Capability::CredentialAccess => "credential-access",
            Capability::Dependency => "dependency",
            Capability::EntryPoint => "entry-point",
            Capability::PthFile => "pth-file",
        }
    }

    /// The rule id of the finding raised when the capability is new.
    pub fn rule(self) -> String {
        format!("release-new-{}", self.as_str())
    }

    /// Points a new capability adds to the score. One alone stays under the `suspicious`
    /// threshold (5); a release that gains several at once (a payload usually brings the network,
    /// a program and some obfuscation) reaches it.
    pub(crate) fn points(self) -> f64 {
        match self {
            Capability::InstallExec | Capability::Obfuscation | Capability::CredentialAccess | Capability::PthFile => 3.0,
            Capability::Network | Capability::Process | Capability::DynamicCode => 2.0,
            Capability::Dependency | Capability::EntryPoint => 1.0,
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Capability::InstallExec => "runs code at install or at interpreter start",
            Capability::Network => "uses the network",
            Capability::Process => "runs programs",
            Capability::DynamicCode => "executes code built at run time (exec, eval, compile)",
            Capability::Obfuscation => "carries obfuscated or hidden code",
            Capability::CredentialAccess => "reaches for credential stores or secrets",
            Capability::Dependency => "depends on a new project",
            Capability::EntryPoint => "installs a new entry point (a command or a plugin hook)",
            Capability::PthFile => "installs a new .pth file, which runs at every interpreter start",
        }
    }
}

/// One place where a distribution shows a capability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapabilityUse {
    pub capability: Capability,
    /// The dependency (normalized name), entry point (`group: name`) or `.pth` file concerned;
    /// empty for the other capabilities.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub item: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub excerpt: String,
}

impl CapabilityUse {
    pub(crate) fn key(&self) -> (Capability, &str) {
        (self.capability, self.item.as_str())
    }
}
