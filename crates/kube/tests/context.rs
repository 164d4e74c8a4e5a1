//! `kubeconfig` and `kube_context`: the client reads the named kubeconfig and uses the named
//! context (its namespace becomes the default one) instead of the current one; a context the file
//! does not have is an error that lists the ones it has. No cluster is contacted.

use mirrord_kube::{Cluster, KubeSettings};

const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: alpha
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:1
contexts:
- name: alpha
  context: { cluster: local, user: me, namespace: alpha-ns }
- name: beta
  context: { cluster: local, user: me, namespace: beta-ns }
users:
- name: me
  user: { token: not-a-real-token }
"#;

#[tokio::test]
async fn kube_context_picks_the_context_of_the_named_kubeconfig() {
    let dir = std::env::temp_dir().join(format!("mirrord-kube-context-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, KUBECONFIG).unwrap();
    let settings = |context: Option<&str>| KubeSettings {
        kubeconfig: Some(path.to_string_lossy().into_owned()),
        context: context.map(str::to_owned),
        accept_invalid_certificates: None,
    };
    let current = Cluster::connect(&settings(None)).await.unwrap();
    assert_eq!(current.namespace(None), "alpha-ns");
    let beta = Cluster::connect(&settings(Some("beta"))).await.unwrap();
    assert_eq!(beta.namespace(None), "beta-ns");
    assert_eq!(beta.namespace(Some("given")), "given");
    let error = Cluster::connect(&settings(Some("gamma")))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("gamma") && error.contains("alpha, beta"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
