// Package integration tests Summon's manifests, examples, golden children and hooks against a
// real kube-apiserver and etcd (started once per test binary by controller-runtime's envtest from
// KUBEBUILDER_ASSETS, on 127.0.0.1 only), and end to end with a real Metacontroller when
// METACONTROLLER_BIN names one. It holds only tests; `hack/test.sh` runs them.
package integration
