//! The status pass looks at what changed: after a full pass has settled 1,000 Routes, a pass
//! looks at none of them until one moves (its computed status, its cached object, its proxy
//! progress), and then at that one only, while writing exactly what a full pass would.

use frontdesk_crds::Output;
use frontdesk_crds::route::RouteStatus;
use serde_json::Value;

use super::status_fixture::{Cache, Recorder, compiled, progress, route};
use super::status_writer::{PassDone, StatusPass};

fn looked(looked_at: usize, writes: usize) -> PassDone {
    PassDone { looked_at, writes }
}

#[tokio::test]
async fn a_pass_looks_only_at_the_objects_whose_inputs_moved() {
    const N: usize = 1000;
    let mut routes: Vec<Value> = (0..N).map(|i| route(i, "/", None, 1)).collect();
    let mut cache = Cache::new(&routes, N);
    let mut output = std::sync::Arc::new(compiled(&routes));
    let sink = Recorder::default();
    let mut pass = StatusPass::default();
    let run = async |cache: &Cache,
                     pass: &mut StatusPass,
                     output: &std::sync::Arc<Output>,
                     full: bool| { cache.pass(pass, &sink, output, full).await };

    // The first (full) pass writes every status.
    let done = run(&cache, &mut pass, &output, true).await;
    assert_eq!(done, looked(N, N));
    let mut written = sink.take();
    written.sort_by_key(|(name, _)| name[1..].parse::<usize>().unwrap());
    // Nothing came back yet: the written ones are pending, looked at, not written again.
    let done = run(&cache, &mut pass, &output, false).await;
    assert_eq!(done, looked(N, 0));
    // They come back through the watch: looked at once more, then settled.
    for (i, (name, status)) in written.iter().enumerate() {
        assert_eq!(*name, format!("r{i}"));
        routes[i] = route(i, "/", Some(status), 2);
        cache.apply(&routes[i]);
    }
    let done = run(&cache, &mut pass, &output, false).await;
    assert_eq!(done, looked(N, 0));
    let done = run(&cache, &mut pass, &output, false).await;
    assert_eq!(done, looked(0, 0));

    // Someone wipes r7's status: that one object is looked at, and written again.
    cache.apply(&route(7, "/", None, 3));
    let done = run(&cache, &mut pass, &output, false).await;
    assert_eq!(done, looked(1, 1));
    let conditions = |s: &RouteStatus| -> Vec<(String, String, String)> {
        (s.conditions.iter())
            .map(|c| (c.type_.clone(), c.status.clone(), c.message.clone()))
            .collect()
    };
    assert_eq!(conditions(&sink.take()[0].1), conditions(&written[7].1));
    cache.apply(&routes[7]);
    run(&cache, &mut pass, &output, false).await;
    assert_eq!(run(&cache, &mut pass, &output, false).await.looked_at, 0);

    // r3 edited into a rejected one: a new output, where only r3's status differs.
    routes[3] = route(3, "no-slash", None, 4);
    cache.apply(&routes[3]);
    output = std::sync::Arc::new(compiled(&routes));
    let done = run(&cache, &mut pass, &output, false).await;
    assert_eq!(done, looked(1, 1));
    let (name, status) = sink.take().remove(0);
    assert_eq!(name, "r3");
    let accepted = status.conditions.iter().find(|c| c.type_ == "Accepted");
    assert_eq!(accepted.map(|c| c.status.as_str()), Some("False"));

    // A proxy stops serving r0: its progress moved, nothing else's.
    cache.set_progress(progress(2, 1, "2", N));
    let done = run(&cache, &mut pass, &output, false).await;
    assert_eq!(
        done.looked_at,
        1 + 1,
        "r0, and r3's write not seen back yet"
    );
    let programmed = |s: &RouteStatus| {
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Programmed")
            .unwrap();
        c.message.clone()
    };
    let r0 = sink.take().into_iter().find(|(n, _)| n == "r0").unwrap().1;
    assert!(programmed(&r0).contains("1/2"), "{}", programmed(&r0));

    // A full pass looks at everything and finds nothing else to write.
    let done = run(&cache, &mut pass, &output, true).await;
    assert_eq!(done.looked_at, N);
    assert!(sink.take().iter().all(|(n, _)| n == "r0" || n == "r3"));
}
