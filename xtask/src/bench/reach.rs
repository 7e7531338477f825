//! `observer reach` on the test images: cold (an empty cache: the image
//! exported and every ELF file decoded), cached (the image's result kept by
//! its id), and an exported root as a directory with nothing changed (the
//! stat index's stored result). Next to it, the reachable set's size and
//! Docker's default allowance.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

use super::env::Env;

/// The images the tests build (an image that is not there is skipped, and said).
const IMAGES: &[&str] = &["observer-busybox:latest", "observer-realsoft:latest"];

pub fn measure(env: &Env) -> anyhow::Result<serde_json::Value> {
    let mut rows = Vec::new();
    for image in IMAGES {
        let present = Command::new("docker").args(["image", "inspect", image]).output()?.status.success();
        if !present {
            eprintln!("[bench] reach: {image} is not there (cargo xtask setup test builds it): skipped");
            continue;
        }
        let cache = env.work.join("reach-cache");
        let _ = std::fs::remove_dir_all(&cache);
        let (cold, answer) = timed(env, image, &cache)?;
        let (cached, _) = timed(env, image, &cache)?;
        let dir = env.work.join("reach-root");
        let _ = std::fs::remove_dir_all(&dir);
        export(image, &dir)?;
        let target = dir.to_str().context("a UTF-8 work directory")?;
        let (dir_first, _) = timed(env, target, &cache)?;
        let (dir_unchanged, again) = timed(env, target, &cache)?;
        let _ = std::fs::remove_dir_all(&dir);
        let abi = |a: &str| answer["docker_default"].as_array().and_then(|v| v.iter().find(|x| x["abi"] == a).cloned());
        rows.push(json!({
            "image": image,
            "elf_files": answer["files"],
            "cold_s": cold,
            "cached_by_image_id_s": cached,
            "directory_first_s": dir_first,
            "directory_unchanged_s": dir_unchanged,
            "directory_unchanged_from_stored_result": again["unchanged"],
            "complete": answer["complete"],
            "undecided_sites": answer["undecided_total"],
            "x86_64": abi("x86_64"),
            "i386": abi("i386"),
        }));
    }
    Ok(json!(rows))
}

/// One `observer reach TARGET --json` run: seconds and its answer.
fn timed(env: &Env, target: &str, cache: &Path) -> anyhow::Result<(f64, serde_json::Value)> {
    let started = Instant::now();
    let out = Command::new(&env.observer).args(["reach", target, "--json", "--cache-dir"]).arg(cache).output()?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("observer reach {target} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let answer = serde_json::from_slice(&out.stdout).context("observer reach --json")?;
    Ok((seconds, answer))
}

/// The image's files in `dir` (`docker create` + `docker export`, never started).
fn export(image: &str, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let out = Command::new("docker").args(["create", "--network", "none", image, "/nonexistent"]).output()?;
    if !out.status.success() {
        bail!("docker create {image}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let status = Command::new("sh")
        .arg("-c")
        .arg("docker export \"$1\" | tar -x -C \"$2\" --no-same-owner")
        .args(["sh", &id])
        .arg(dir)
        .status();
    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("docker export {image} | tar -x: {s}"),
        Err(e) => bail!("docker export {image}: {e}"),
    }
}
