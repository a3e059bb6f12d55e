//! The controller takes rotated credentials without a restart. Two rotations in a row (no
//! promotion interval) put the newest files two CA generations away from the ones the
//! controller started with: a proxy restarted with them is accepted only by a controller that
//! re-read its files, so this fails if the controller's side of the reload is not wired.
//! Local processes only: it needs to restart proxies at a chosen moment.

use std::time::Duration;

use frontdesk_e2e::target::{Local, Target};
use frontdesk_e2e::{client, eventually, get};

async fn until_version(url: &str, body: &str) {
    eventually(
        Duration::from_secs(30),
        &format!("{url} to answer {body}"),
        || async {
            let (status, _, got) = get(&client(), url).await.ok()?;
            (status == 200 && got == body.as_bytes()).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_reloads_rotated_files_without_a_restart() {
    let mut t = Target::Local(Box::new(Local::start("reload")));
    let v1 = t.manifest("shop.yaml");
    t.apply("shop", &v1);
    let replicas = t.replicas("default");
    for replica in &replicas {
        until_version(&format!("{replica}/version"), "v1").await;
    }

    t.rotate_credentials();
    t.rotate_credentials();
    t.settle_rotation().await;
    let Target::Local(local) = &mut t else {
        unreachable!()
    };
    local.restart_proxies();
    t.apply("shop", &v1.replace(r#"body: "v1""#, r#"body: "v2""#));
    for replica in &replicas {
        until_version(&format!("{replica}/version"), "v2").await;
    }
    let log = t.controller_log();
    assert!(
        log.contains("TLS credentials changed on disk"),
        "the controller reloaded:\n{log}"
    );
}
