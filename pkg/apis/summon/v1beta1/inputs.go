package v1beta1

// Input consent. A Secret is read as an input of a SummonPlatform (spec.secrets,
// spec.database.urlSecret, spec.redis.urlSecret) only when it says so itself: it carries the label
// LabelInput with the value "true" and the annotation AnnotationInputFor naming the SummonPlatforms
// of its namespace that may read it. Whoever may write a SummonPlatform can thus name only what
// whoever may write that Secret has handed over, never a neighbour's Secret or one of Summon's own.
const (
	// LabelInput marks a Secret as an input of SummonPlatforms. A label, so that
	// kubectl get secrets -l summon.forklift.dev/input=true lists every Secret handed to Summon.
	LabelInput = Group + "/input"
	// AnnotationInputFor names the SummonPlatforms (of the Secret's namespace) that may read the
	// Secret: a comma-separated list of names, or InputForAll. An annotation, because a label
	// value can hold neither a list nor "*".
	AnnotationInputFor = Group + "/input-for"
	// InputForAll in AnnotationInputFor lets every SummonPlatform of the namespace read the Secret.
	InputForAll = "*"
)
