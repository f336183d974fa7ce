//go:build tools

// Package kubetools pins the commands that hack/kube-binaries.sh builds, so
// that `go mod tidy` keeps their dependencies in go.mod and go.sum.
package kubetools

import (
	_ "go.etcd.io/etcd/server/v3"                     // etcd
	_ "k8s.io/kubernetes/cmd/kube-apiserver"          // kube-apiserver
	_ "k8s.io/kubernetes/cmd/kube-controller-manager" // kube-controller-manager
	_ "k8s.io/kubernetes/cmd/kube-proxy"              // kube-proxy (the real node)
	_ "k8s.io/kubernetes/cmd/kube-scheduler"          // kube-scheduler
	_ "k8s.io/kubernetes/cmd/kubectl"                 // kubectl
	_ "k8s.io/kubernetes/cmd/kubelet"                 // kubelet (the real node)
)
