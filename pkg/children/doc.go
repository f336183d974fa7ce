// Package children builds every Kubernetes object that a SummonPlatform owns, one small pure
// builder per component, as typed k8s.io/api objects, and turns them into the minimal JSON that
// Metacontroller applies. It performs no I/O and reads no clock: what it cannot read from the
// parent (the version each workload runs, the config hash) comes in as arguments, decided by the
// gate.
package children
