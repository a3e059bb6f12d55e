//! Leadership: the Lease held while this replica runs, and handed over when it stops.
//!
//! kube-lease-manager keeps the Lease; its channel says whether this replica leads, and once
//! every receiver of it is gone it releases the Lease. The replica's tasks follow a channel of
//! ours instead ([`relay`]). On shutdown the relay first stops leading here (no status write
//! starts after), then drops the manager's receiver so that it releases the Lease, and waits
//! for that, at most [`RELEASE_WAIT`]: the next replica takes over at its next try, within a
//! second or two, instead of after the Lease's duration.

use std::time::Duration;

use kube_lease_manager::{LeaseManager, LeaseManagerError};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The longest a stopping replica waits for its Lease to be released.
pub const RELEASE_WAIT: Duration = Duration::from_secs(3);

/// Whether this replica leads, as long as it runs. When `stop` turns true (or its sender is
/// dropped) leadership ends and the Lease is released; `released` is told once that is done
/// (or given up).
pub async fn relay(
    lease: LeaseManager,
    stop: watch::Receiver<bool>,
    released: Option<oneshot::Sender<()>>,
) -> watch::Receiver<bool> {
    let (theirs, task) = lease.watch().await;
    let (ours, leader) = watch::channel(*theirs.borrow());
    tokio::spawn(async move {
        follow(theirs, task, ours, stop).await;
        if let Some(released) = released {
            let _ = released.send(());
        }
    });
    leader
}

async fn follow(
    mut theirs: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    ours: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            changed = theirs.changed() => {
                if changed.is_err() {
                    break;
                }
                let leads = *theirs.borrow_and_update();
                tracing::info!(leads, "leadership changed");
                ours.send_replace(leads);
            }
        }
    }
    ours.send_replace(false);
    // The manager's last receiver: it releases the Lease and ends.
    drop(theirs);
    match tokio::time::timeout(RELEASE_WAIT, task).await {
        Ok(Ok(Ok(_))) => tracing::info!("the Lease was released"),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "releasing the Lease failed; it expires instead")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "the Lease's task failed; it expires instead"),
        Err(_) => tracing::warn!("the Lease was not released in time; it expires instead"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::{Request, Response, StatusCode};
    use kube::Client;
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/frontdesk/leases";

    /// A Lease API on one object: GET, POST and PATCH (apply or strategic merge of the spec,
    /// a null removing a field). Records each patch.
    fn lease_api(lease: Arc<Mutex<Option<Value>>>, patches: Arc<Mutex<Vec<Value>>>) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let body = request.into_body().collect_bytes().await.unwrap();
                let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut stored = lease.lock().unwrap();
                let (status, answer) = match method {
                    http::Method::GET => match &*stored {
                        Some(l) => (StatusCode::OK, l.clone()),
                        None => (
                            StatusCode::NOT_FOUND,
                            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "reason": "NotFound", "code": 404, "message": "not found"}),
                        ),
                    },
                    http::Method::POST => {
                        assert_eq!(path, PATH);
                        let mut created = sent;
                        created["apiVersion"] = json!("coordination.k8s.io/v1");
                        created["kind"] = json!("Lease");
                        created["metadata"]["namespace"] = json!("frontdesk");
                        *stored = Some(created.clone());
                        (StatusCode::CREATED, created)
                    }
                    http::Method::PATCH => {
                        patches.lock().unwrap().push(sent.clone());
                        let l = stored.as_mut().expect("the Lease was created first");
                        if l["spec"].is_null() {
                            l["spec"] = json!({});
                        }
                        for (field, value) in sent["spec"].as_object().cloned().unwrap_or_default()
                        {
                            let spec = l["spec"].as_object_mut().unwrap();
                            if value.is_null() {
                                spec.remove(&field);
                            } else {
                                spec.insert(field, value);
                            }
                        }
                        (StatusCode::OK, l.clone())
                    }
                    other => panic!("unexpected {other} {path}"),
                };
                let mut response = Response::new(Body::from(serde_json::to_vec(&answer).unwrap()));
                *response.status_mut() = status;
                send.send_response(response);
            }
        });
        Client::new(service, "default")
    }

    /// A stopping leader releases its Lease (holderIdentity cleared) before it exits, and
    /// stops leading first.
    #[tokio::test]
    async fn a_stopping_leader_releases_its_lease() {
        let lease = Arc::new(Mutex::new(None));
        let patches = Arc::new(Mutex::new(Vec::new()));
        let client = lease_api(lease.clone(), patches.clone());
        let manager = kube_lease_manager::LeaseManagerBuilder::new(client, "frontdesk")
            .with_namespace("frontdesk")
            .with_identity("replica-a")
            .build()
            .await
            .unwrap();
        let (stop, stopping) = watch::channel(false);
        let (released, done) = oneshot::channel();
        let mut leader = relay(manager, stopping, Some(released)).await;
        tokio::time::timeout(Duration::from_secs(10), leader.wait_for(|l| *l))
            .await
            .expect("replica-a leads")
            .unwrap();
        assert_eq!(
            lease.lock().unwrap().as_ref().unwrap()["spec"]["holderIdentity"],
            "replica-a"
        );
        stop.send_replace(true);
        tokio::time::timeout(RELEASE_WAIT + Duration::from_secs(1), done)
            .await
            .expect("released in time")
            .unwrap();
        assert!(!*leader.borrow());
        let held = lease.lock().unwrap().as_ref().unwrap()["spec"].clone();
        assert!(held.get("holderIdentity").is_none(), "{held}");
        let last = patches.lock().unwrap().last().cloned().unwrap();
        assert!(last["spec"]["holderIdentity"].is_null(), "{last}");
    }
}
