//! `deploy.yml`: what an application directory says about its package.
//!
//! Parsed strictly (serde_yaml_ng; serde_yaml is archived): an unknown key
//! or a wrong type is an error that names the file, line and column.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const FILE_NAME: &str = "deploy.yml";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// The app's name: the package is `vrmd-<app_name>`, installed at
    /// `<prefix>/<app_name>`.
    pub app_name: String,
    /// The team or project the app belongs to (free text).
    pub project: String,
    #[serde(default)]
    pub build_deps: Vec<String>,
    #[serde(default)]
    pub run_deps: Vec<String>,
    /// `3.11` → `/usr/bin/python3.11`; `pypy`, `pypy3` too.
    pub python_version: String,
    /// The dist the package is published to (e.g. `trusty`).
    pub target_platform: String,
    #[serde(default)]
    pub pipeline: Pipeline,
    #[serde(default = "default_prefix")]
    pub prefix: PathBuf,
    #[serde(default = "default_architecture")]
    pub architecture: String,
    #[serde(default = "default_exclude")]
    pub exclude: Vec<String>,
    #[serde(default = "default_component")]
    pub component: String,
    pub maintainer: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    #[serde(default)]
    pub less_files: Vec<String>,
    #[serde(default)]
    pub css_files: Vec<String>,
    #[serde(default)]
    pub compile_i18n: bool,
    #[serde(default)]
    pub collect_static: Vec<String>,
    #[serde(default)]
    pub add_cache_busting: Vec<String>,
}

fn default_prefix() -> PathBuf {
    PathBuf::from("/vrmd")
}

fn default_architecture() -> String {
    "all".into()
}

fn default_exclude() -> Vec<String> {
    vec!["*.bak".into(), "*.orig".into()]
}

fn default_component() -> String {
    "dev".into()
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{path} is missing")]
    Missing { path: PathBuf },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: `{key}` {problem}")]
    Value {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

impl DeployError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            DeployError::Missing { .. } => "run repoctl build in an application directory, or pass it (repoctl build DIR); it needs deploy.yml with app_name, project, python_version and target_platform".into(),
            DeployError::Read { .. } => return None,
            DeployError::Invalid { .. } | DeployError::Value { .. } => {
                "keys: app_name, project, build_deps, run_deps, python_version, target_platform, pipeline (less_files, css_files, compile_i18n, collect_static, add_cache_busting), prefix, architecture, exclude, component, maintainer".into()
            }
        })
    }
}

impl Deploy {
    pub fn load(app_dir: &Path) -> Result<Deploy, DeployError> {
        let path = app_dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DeployError::Missing { path })
            }
            Err(source) => return Err(DeployError::Read { path, source }),
        };
        Deploy::parse(&text, &path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Deploy, DeployError> {
        let deploy: Deploy = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            // The location is in front already.
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(at) => message[..at].to_string(),
                None => message,
            };
            DeployError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })?;
        deploy.validate(path)?;
        Ok(deploy)
    }

    fn validate(&self, path: &Path) -> Result<(), DeployError> {
        let bad = |key: &'static str, problem: String| DeployError::Value {
            path: path.to_path_buf(),
            key,
            problem,
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.+".contains(&b))
                && s.as_bytes()[0].is_ascii_alphanumeric()
        };
        if !name_ok(&self.app_name) {
            return Err(bad("app_name", format!("is {:?}: use lowercase letters, digits, '-', '.' and '+' (it becomes the package name vrmd-<app_name>)", self.app_name)));
        }
        if !self.prefix.is_absolute() || self.prefix.components().any(|c| c.as_os_str() == "..") {
            return Err(bad(
                "prefix",
                format!("is {:?}: give an absolute path such as /vrmd", self.prefix),
            ));
        }
        for (key, list) in [
            ("build_deps", &self.build_deps),
            ("run_deps", &self.run_deps),
        ] {
            if let Some(dep) = list
                .iter()
                .find(|d| d.is_empty() || d.contains([',', '\n']))
            {
                return Err(bad(
                    key,
                    format!("has {dep:?}: one Debian package (with an optional version) per entry"),
                ));
            }
        }
        if !crate::names::is_safe_name(&self.target_platform)
            || !crate::names::is_safe_name(&self.component)
        {
            return Err(bad(
                "target_platform",
                "and component must be dist and component names such as trusty and dev".into(),
            ));
        }
        if !["all", "amd64", "i386", "arm64", "armhf"].contains(&self.architecture.as_str()) {
            return Err(bad(
                "architecture",
                format!(
                    "is {:?}: use all, or the build host's architecture (amd64)",
                    self.architecture
                ),
            ));
        }
        Ok(())
    }

    pub fn package_name(&self) -> String {
        format!("vrmd-{}", self.app_name)
    }

    /// Where the venv lives, on the build host and on every target host.
    pub fn install_path(&self) -> PathBuf {
        self.prefix.join(&self.app_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "app_name: whois\nproject: DOM\nbuild_deps: [libpq-dev]\nrun_deps: [libpq5]\npython_version: \"3.11\"\ntarget_platform: trusty\npipeline:\n  add_cache_busting: [base.html]\n";

    fn parse(text: &str) -> Result<Deploy, DeployError> {
        Deploy::parse(text, Path::new("deploy.yml"))
    }

    #[test]
    fn a_deploy_file_with_defaults() {
        let d = parse(GOOD).unwrap();
        assert_eq!(d.package_name(), "vrmd-whois");
        assert_eq!(d.install_path(), Path::new("/vrmd/whois"));
        assert_eq!(d.architecture, "all");
        assert_eq!(d.component, "dev");
        assert_eq!(d.exclude, ["*.bak", "*.orig"]);
        assert_eq!(d.pipeline.add_cache_busting, ["base.html"]);
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_line_and_column() {
        let err = parse(&format!("{GOOD}colour: blue\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("deploy.yml:9:1: ") && err.contains("colour"),
            "{err}"
        );
        let err = parse(&GOOD.replace("[libpq5]", "libpq5: yes"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("deploy.yml:4:") && err.contains("run_deps"),
            "{err}"
        );
        let err = parse("app_name: whois\n").unwrap_err().to_string();
        assert!(err.contains("missing field `project`"), "{err}");
        let err = parse(
            &GOOD
                .replace("    ", "")
                .replace("  add_cache_busting", "  bust"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bust"), "{err}");
    }

    #[test]
    fn values_are_checked() {
        let err = parse(&GOOD.replace("app_name: whois", "app_name: Who/is"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`app_name`"), "{err}");
        let err = parse(&format!("{GOOD}prefix: relative\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`prefix`"), "{err}");
    }
}
