// Package dashboard is Summon's read-only web view of the fleet: one page for every
// SummonPlatform across namespaces and one for each instance, kept current in open browsers with
// server-sent events. `summonctl dashboard` runs it on a laptop with the user's kubeconfig, and
// manifests/dashboard/ runs it in the cluster with a read-only ClusterRole.
//
// It owns the informer-fed view (informers.go, view.go), the pure functions that turn the view
// into page models (fleet.go, instance.go), the pages themselves (templates/, static/) and their
// HTTP server (server.go: /healthz, /readyz, /metrics, the live updates).
//
// It must never write to the cluster, never call the API server to answer a request (every page is
// built from the informers' memory), never read a Secret (it doesn't watch them), and never
// trust a string from the cluster as HTML: every one is escaped by html/template. It reads the
// status through the core's types and readers (v1beta1.Status, platform.ReadParent,
// platform.MigrationJobOf) and names through pkg/children, and never re-derives what the core
// decides.
package dashboard
