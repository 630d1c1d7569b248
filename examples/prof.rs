use std::time::Instant;
fn main() {
    let inj = meshd::inject::Injector::with_defaults().unwrap();
    let pod = serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default","labels":{"app":"hello"}},"spec":{"containers":[{"name":"hello","image":"x","ports":[{"name":"http","containerPort":80}]}]}});
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        let _ = inj.inject(meshd::inject::Request::webhook(pod.clone(), None));
    }
    println!("inject: {:?}/op", t.elapsed() / n);
    let out = match inj
        .inject(meshd::inject::Request::webhook(pod.clone(), None))
        .unwrap()
    {
        meshd::inject::Outcome::Injected(p) => p,
        _ => panic!(),
    };
    let text = serde_norway::to_string(&out).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let _: serde_json::Value = serde_norway::from_str(&text).unwrap();
    }
    println!("yaml parse {} bytes: {:?}/op", text.len(), t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = meshd::inject::create_patch(&pod, &out);
    }
    println!("diff: {:?}/op", t.elapsed() / n);
    let v = meshd::config::Values::default();
    let t = Instant::now();
    for _ in 0..n {
        let _ = minijinja::Value::from_serialize(&v.0);
    }
    println!("values to minijinja: {:?}/op", t.elapsed() / n);
}
