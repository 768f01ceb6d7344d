//! Writes the `security-runbook` kernelspec: kernel.json (from ../kernelspec,
//! pointing at this binary) and the logos.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub const KERNEL_NAME: &str = "security-runbook";

const KERNEL_JSON: &str = include_str!("../../kernelspec/kernel.json");
const FILES: [(&str, &[u8]); 3] = [
    (
        "logo-32x32.png",
        include_bytes!("../../kernelspec/logo-32x32.png"),
    ),
    (
        "logo-64x64.png",
        include_bytes!("../../kernelspec/logo-64x64.png"),
    ),
    (
        "logo-svg.svg",
        include_bytes!("../../kernelspec/logo-svg.svg"),
    ),
];

/// Where kernelspecs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The user's Jupyter data directory.
    User,
    /// The active virtual environment or conda prefix.
    SysPrefix,
    /// `<DIR>/share/jupyter/kernels`.
    Prefix(PathBuf),
}

fn kernels_dir(location: &Location) -> anyhow::Result<PathBuf> {
    Ok(match location {
        Location::User => jupyter_zmq_client::user_data_dir()
            .context("cannot find the user's Jupyter data directory")?
            .join("kernels"),
        Location::SysPrefix => {
            let prefix = std::env::var_os("VIRTUAL_ENV")
                .or_else(|| std::env::var_os("CONDA_PREFIX"))
                .context("--sys-prefix needs an active virtual environment or conda environment (VIRTUAL_ENV or CONDA_PREFIX); use --prefix DIR or --user instead")?;
            PathBuf::from(prefix).join("share/jupyter/kernels")
        }
        Location::Prefix(dir) => dir.join("share/jupyter/kernels"),
    })
}

/// kernel.json with argv[0] set to `binary`.
pub fn kernel_json(binary: &Path) -> anyhow::Result<String> {
    let mut spec: serde_json::Value =
        serde_json::from_str(KERNEL_JSON).context("kernelspec/kernel.json is not valid JSON")?;
    let argv0 = spec
        .get_mut("argv")
        .and_then(|a| a.get_mut(0))
        .context("kernelspec/kernel.json has no argv")?;
    *argv0 = serde_json::Value::String(binary.display().to_string());
    Ok(serde_json::to_string_pretty(&spec)?)
}

/// Installs the kernelspec and returns its directory.
pub fn install(location: &Location) -> anyhow::Result<PathBuf> {
    let binary = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot find this program's own path")?;
    let dir = kernels_dir(location)?.join(KERNEL_NAME);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    write("kernel.json", kernel_json(&binary)?.as_bytes())?;
    for (name, bytes) in FILES {
        write(name, bytes)?;
    }
    Ok(dir)
}

/// Removes the kernelspec; returns its directory if there was one.
pub fn uninstall(location: &Location) -> anyhow::Result<Option<PathBuf>> {
    let dir = kernels_dir(location)?.join(KERNEL_NAME);
    if !dir.exists() {
        return Ok(None);
    }
    if !dir.join("kernel.json").exists() {
        bail!(
            "{} exists but holds no kernel.json; not removing it",
            dir.display()
        );
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    Ok(Some(dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kernel_json_points_at_the_binary_and_keeps_the_rest() {
        let json: serde_json::Value =
            serde_json::from_str(&kernel_json(Path::new("/opt/bin/runbook-kernel")).unwrap())
                .unwrap();
        assert_eq!(json["argv"][0], "/opt/bin/runbook-kernel");
        assert_eq!(json["argv"][2], "{connection_file}");
        assert_eq!(json["display_name"], "Security Runbook (Rust)");
        assert_eq!(json["language"], "rust");
        assert_eq!(json["interrupt_mode"], "message");
    }

    #[test]
    fn install_and_uninstall_under_a_prefix() {
        let prefix = std::env::temp_dir().join(format!("runbook-install-{}", std::process::id()));
        let location = Location::Prefix(prefix.clone());
        let dir = install(&location).unwrap();
        assert!(dir.ends_with("share/jupyter/kernels/security-runbook"));
        for name in [
            "kernel.json",
            "logo-32x32.png",
            "logo-64x64.png",
            "logo-svg.svg",
        ] {
            assert!(dir.join(name).is_file(), "{name}");
        }
        assert_eq!(uninstall(&location).unwrap(), Some(dir.clone()));
        assert!(!dir.exists());
        assert_eq!(uninstall(&location).unwrap(), None);
        std::fs::remove_dir_all(prefix).ok();
    }
}
