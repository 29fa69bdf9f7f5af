//! The asset pipeline of deploy.yml, run in the app's copy inside the venv:
//! cache busting natively, translations, static files, LESS and CSS with
//! the host's tools (a missing tool names its Debian package).

use std::path::Path;
use std::process::{Command, Stdio};

use super::deploy::Pipeline;
use super::BuildError;

/// The marker `add_cache_busting` replaces with the package version.
pub const CACHE_BUST_MARKER: &str = "__CACHE_BUST__";

/// Runs every step deploy.yml lists; returns the names of the steps run.
pub fn run(
    pipeline: &Pipeline,
    app: &Path,
    venv: &Path,
    version: &str,
) -> Result<Vec<&'static str>, BuildError> {
    let mut done = Vec::new();
    for file in &pipeline.less_files {
        let css = Path::new(file).with_extension("css");
        tool(app, "lessc", "node-less", |c| c.arg(file).arg(&css))?;
        done.push("less_files");
    }
    for file in &pipeline.css_files {
        let min = Path::new(file).with_extension("min.css");
        tool(app, "cleancss", "cleancss", |c| {
            c.arg("-o").arg(&min).arg(file)
        })?;
        done.push("css_files");
    }
    if pipeline.compile_i18n {
        compile_i18n(app, venv)?;
        done.push("compile_i18n");
    }
    if !pipeline.collect_static.is_empty() {
        let python = venv.join("bin").join("python");
        tool(app, &python.display().to_string(), "python3", |c| {
            c.args(["manage.py", "collectstatic", "--noinput"])
        })?;
        done.push("collect_static");
    }
    for file in &pipeline.add_cache_busting {
        bust(&app.join(file), version)?;
        done.push("add_cache_busting");
    }
    done.dedup();
    Ok(done)
}

/// Replaces every `__CACHE_BUST__` in `path` with the version.
fn bust(path: &Path, version: &str) -> Result<(), BuildError> {
    let fail = |message: String| BuildError::Step {
        step: "add cache busting",
        message,
        hint: "list files of the app (relative to its root) under pipeline.add_cache_busting"
            .into(),
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    if !text.contains(CACHE_BUST_MARKER) {
        return Err(fail(format!(
            "{} holds no {CACHE_BUST_MARKER} marker",
            path.display()
        )));
    }
    std::fs::write(path, text.replace(CACHE_BUST_MARKER, version))
        .map_err(|e| fail(format!("{}: {e}", path.display())))
}

/// Django's `compilemessages` when there is a manage.py, else `msgfmt` for
/// every `.po` file (the `.mo` beside it).
fn compile_i18n(app: &Path, venv: &Path) -> Result<(), BuildError> {
    if app.join("manage.py").exists() {
        let python = venv.join("bin").join("python");
        return tool(app, &python.display().to_string(), "python3", |c| {
            c.args(["manage.py", "compilemessages"])
        });
    }
    for entry in walkdir::WalkDir::new(app)
        .into_iter()
        .filter_map(Result::ok)
    {
        let po = entry.path();
        if po.extension().is_some_and(|e| e == "po") {
            let mo = po.with_extension("mo");
            tool(app, "msgfmt", "gettext", |c| c.arg("-o").arg(&mo).arg(po))?;
        }
    }
    Ok(())
}

/// Runs a host tool in the app's directory; a missing one names its package.
fn tool(
    app: &Path,
    program: &str,
    package: &'static str,
    args: impl FnOnce(&mut Command) -> &mut Command,
) -> Result<(), BuildError> {
    let mut command = Command::new(program);
    command
        .current_dir(app)
        .stdout(Stdio::from(std::io::stderr()));
    args(&mut command);
    let status = command
        .status()
        .map_err(|e| BuildError::tool(program, package, &e))?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Step {
            step: "run the pipeline",
            message: format!("{command:?} failed ({status}); its output is above"),
            hint: "fix the app's assets, or the pipeline in deploy.yml".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_busting_replaces_the_marker_and_refuses_a_file_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("base.html");
        std::fs::write(&page, "<link href=\"s.css?v=__CACHE_BUST__\">").unwrap();
        bust(&page, "42").unwrap();
        assert_eq!(
            std::fs::read_to_string(&page).unwrap(),
            "<link href=\"s.css?v=42\">"
        );
        assert!(bust(&page, "43")
            .unwrap_err()
            .to_string()
            .contains("no __CACHE_BUST__"));
    }

    #[test]
    fn a_missing_tool_names_its_debian_package() {
        let dir = tempfile::tempdir().unwrap();
        let err = tool(dir.path(), "lessc-not-here", "node-less", |c| c.arg("x")).unwrap_err();
        let hint = err.hint().unwrap();
        assert!(
            err.to_string().contains("lessc-not-here")
                && hint.contains("apt-get install node-less"),
            "{err} / {hint}"
        );
    }
}
