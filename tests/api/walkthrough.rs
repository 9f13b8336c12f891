//! The README's walk-through, run as written against `upload-tickets dev` and its own
//! store: every `sh` block of the section (but the one that starts dev, which the test
//! does itself), in one bash, with the banner's tokens and the test's ports put in.
//! A `# → text` line in a block is what that block must print.

use std::path::Path;
use std::process::Command;

use crate::dev::Dev;

/// The `sh` blocks of the README section headed `heading`.
fn shell_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme.find(heading).expect("the section exists");
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest[..rest.find("```").expect("a closed block")].to_owned())
        .collect()
}

#[tokio::test]
async fn the_readme_walk_through_works_as_written() {
    for tool in ["curl", "jq", "bash"] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "{tool} is not installed: run scripts/install-test-deps.sh"
        );
    }
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let blocks = shell_blocks(&readme, "## Walk-through: from a token to a real upload");
    assert!(
        blocks.len() >= 4,
        "the walk-through has its blocks: {blocks:?}"
    );
    let (starts_dev, blocks): (Vec<_>, Vec<_>) = blocks
        .into_iter()
        .partition(|b| b.contains("cargo run -- dev"));
    assert_eq!(starts_dev.len(), 1, "one block starts dev");

    let dev = Dev::start(&[]).await;
    let mut script = String::from("set -euo pipefail\n");
    for (n, block) in blocks.iter().enumerate() {
        // PUT_TOKEN first: TOKEN= is a part of it.
        let block = block
            .replace("PUT_TOKEN=eyJ...", &format!("PUT_TOKEN={}", dev.put_token))
            .replace("\nTOKEN=eyJ...", &format!("\nTOKEN={}", dev.token))
            .replace("http://127.0.0.1:8080", &dev.base);
        let block = match block.strip_prefix("TOKEN=eyJ...") {
            Some(rest) => format!("TOKEN={}{rest}", dev.token),
            None => block,
        };
        script.push_str(&format!("echo '::block {n}::'\n{block}\n"));
    }
    let dir = std::env::temp_dir().join(format!("upload-tickets-walk-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            Command::new("bash")
                .arg("-c")
                .arg(script)
                .current_dir(&dir)
                .output()
                .expect("bash runs")
        }
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the walk-through failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    for (n, block) in blocks.iter().enumerate() {
        let printed = stdout
            .split(&format!("::block {n}::\n"))
            .nth(1)
            .map(|rest| rest.split("::block ").next().unwrap_or(rest))
            .expect("the block ran");
        for expected in block.lines().filter_map(|l| l.trim().strip_prefix("# → ")) {
            assert!(
                printed.contains(expected),
                "block {n} should print {expected:?}; it printed:\n{printed}"
            );
        }
    }
}
