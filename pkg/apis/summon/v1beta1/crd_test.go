package v1beta1

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/forklift-dev/summon/manifests"
	"github.com/forklift-dev/summon/pkg/crdschema"
)

// loadCRD is manifests/crd.yaml, as package manifests embeds it.
func loadCRD(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crd, err := crdschema.Decode(manifests.CRD)
	if err != nil {
		t.Fatalf("manifests/crd.yaml: %v", err)
	}
	return crd
}

// internalSchema is the schema in the API server's internal form, which the structural-schema,
// validation and CEL packages take.
func internalSchema(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) *apiextensions.JSONSchemaProps {
	t.Helper()
	s, err := crdschema.InternalSchema(crd)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCRDNamesTheAPIOfThisPackage(t *testing.T) {
	crd := loadCRD(t)
	type names struct {
		Name, Group, Kind, ListKind, Plural, Singular string
		ShortNames                                    []string
		Scope                                         apiextensionsv1.ResourceScope
		Version                                       string
		Served, Storage, StatusSubresource            bool
	}
	v := crd.Spec.Versions[0]
	got := names{
		Name: crd.Name, Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind, ListKind: crd.Spec.Names.ListKind,
		Plural: crd.Spec.Names.Plural, Singular: crd.Spec.Names.Singular, ShortNames: crd.Spec.Names.ShortNames,
		Scope: crd.Spec.Scope, Version: v.Name, Served: v.Served, Storage: v.Storage,
		// Metacontroller ignores a parent resource without the status subresource.
		StatusSubresource: v.Subresources != nil && v.Subresources.Status != nil,
	}
	want := names{
		Name: Resource + "." + Group, Group: Group, Kind: Kind, ListKind: Kind + "List",
		Plural: Resource, Singular: "summonplatform", ShortNames: []string{"summon", "sp"},
		Scope: apiextensionsv1.NamespaceScoped, Version: Version, Served: true, Storage: true,
		StatusSubresource: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CRD names (-want +got):\n%s", diff)
	}
}

func TestCRDPrinterColumns(t *testing.T) {
	crd := loadCRD(t)
	want := []apiextensionsv1.CustomResourceColumnDefinition{
		{Name: "Version", Type: "string", JSONPath: ".spec.version"},
		{Name: "Phase", Type: "string", JSONPath: ".status.phase"},
		{Name: "Migrated", Type: "string", JSONPath: ".status.migratedVersion"},
		{Name: "Ready", Type: "string", JSONPath: `.status.conditions[?(@.type=="Ready")].status`},
		{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"},
	}
	got := crd.Spec.Versions[0].AdditionalPrinterColumns
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(apiextensionsv1.CustomResourceColumnDefinition{}, "Description")); diff != "" {
		t.Errorf("printer columns (-want +got):\n%s", diff)
	}
}

func TestCRDSchemaIsStructural(t *testing.T) {
	s, err := structuralschema.NewStructural(internalSchema(t, loadCRD(t)))
	if err != nil {
		t.Fatalf("NewStructural: %v", err)
	}
	if errs := structuralschema.ValidateStructural(nil, s); len(errs) > 0 {
		t.Errorf("the schema is not structural:\n%s", errs.ToAggregate())
	}
}

// The API server runs this validation when the CRD is created. Besides the structural rules it
// compiles every CEL rule and refuses the CRD when a rule's estimated cost is over the limits.
func TestCRDPassesTheAPIServersValidation(t *testing.T) {
	crd := loadCRD(t)
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(crd)
	var internal apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, &internal, nil); err != nil {
		t.Fatalf("converting the CRD to the internal version: %v", err)
	}
	if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) > 0 {
		t.Errorf("the API server would refuse the CRD:\n%s", errs.ToAggregate())
	}
}

func TestCRDSchemaMirrorsTheGoTypes(t *testing.T) {
	crd := loadCRD(t)
	if problems := schemaMismatches("", reflect.TypeFor[SummonPlatform](), crd.Spec.Versions[0].Schema.OpenAPIV3Schema); len(problems) > 0 {
		t.Errorf("manifests/crd.yaml and the Go types disagree:\n%s", strings.Join(problems, "\n"))
	}
}

// The walker is only as good as what it notices, so it is tested on its own against a small type.
func TestSchemaMismatchesReportsEachKindOfDisagreement(t *testing.T) {
	type inner struct {
		Count int32 `json:"count"`
	}
	type sample struct {
		Name  string            `json:"name"`
		Tags  []string          `json:"tags,omitempty"`
		Inner *inner            `json:"inner,omitempty"`
		Extra map[string]string `json:"extra,omitempty"`
	}
	matching := func() *apiextensionsv1.JSONSchemaProps {
		return &apiextensionsv1.JSONSchemaProps{
			Type:     "object",
			Required: []string{"name"},
			Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"name": {Type: "string"},
				"tags": {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}},
				"inner": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"count": {Type: "integer", Format: "int32"},
				}},
				"extra": {Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{
					Allows: true, Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"},
				}},
			},
		}
	}
	tests := map[string]struct {
		change func(s *apiextensionsv1.JSONSchemaProps)
		want   []string
	}{
		"a schema that matches reports nothing": {
			change: func(*apiextensionsv1.JSONSchemaProps) {},
		},
		"a Go field missing from the schema is reported": {
			change: func(s *apiextensionsv1.JSONSchemaProps) { delete(s.Properties, "tags") },
			want:   []string{".tags: the Go field has no schema property"},
		},
		"a schema property without a Go field is reported": {
			change: func(s *apiextensionsv1.JSONSchemaProps) {
				s.Properties["inner"].Properties["size"] = apiextensionsv1.JSONSchemaProps{Type: "integer"}
			},
			want: []string{".inner.size: the schema property has no Go field"},
		},
		"a type mismatch is reported": {
			change: func(s *apiextensionsv1.JSONSchemaProps) {
				s.Properties["inner"].Properties["count"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
			},
			want: []string{`.inner.count: the schema says type "string", the Go type int32 needs "integer"`},
		},
		"an integer format mismatch is reported": {
			change: func(s *apiextensionsv1.JSONSchemaProps) {
				s.Properties["inner"].Properties["count"] = apiextensionsv1.JSONSchemaProps{Type: "integer", Format: "int64"}
			},
			want: []string{`.inner.count: the schema says format "int64", the Go type int32 needs "int32"`},
		},
		"a mismatch inside a map value is reported": {
			change: func(s *apiextensionsv1.JSONSchemaProps) {
				s.Properties["extra"].AdditionalProperties.Schema.Type = "boolean"
			},
			want: []string{`.extra[*]: the schema says type "boolean", the Go type string needs "string"`},
		},
		"a required property that Go omits when empty is reported": {
			change: func(s *apiextensionsv1.JSONSchemaProps) { s.Required = append(s.Required, "tags") },
			want:   []string{".tags: required in the schema, but the Go field is omitempty"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := matching()
			tc.change(s)
			got := schemaMismatches("", reflect.TypeFor[sample](), s)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("mismatches (-want +got):\n%s", diff)
			}
		})
	}
}

// schemaMismatches walks the Go type t next to the schema s and describes every disagreement:
// a Go field without a property, a property without a Go field, a type or integer format that
// differs, and a required property that Go leaves out when it is empty. It follows json tags,
// pointers, slices and maps; a few types that the schema models specially are leaves.
func schemaMismatches(path string, t reflect.Type, s *apiextensionsv1.JSONSchemaProps) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	at := path
	if at == "" {
		at = "."
	}
	switch t {
	case reflect.TypeFor[ConfigValue]():
		if !ptrTrue(s.XPreserveUnknownFields) || s.Type != "" {
			return []string{at + ": a ConfigValue needs x-kubernetes-preserve-unknown-fields and no type (it is a string, a bool or a number)"}
		}
		return nil
	case reflect.TypeFor[resource.Quantity]():
		if !s.XIntOrString {
			return []string{at + ": a resource.Quantity needs x-kubernetes-int-or-string"}
		}
		return nil
	case reflect.TypeFor[metav1.Time]():
		if s.Type != "string" || s.Format != "date-time" {
			return []string{fmt.Sprintf("%s: a metav1.Time needs type string and format date-time, not %q and %q", at, s.Type, s.Format)}
		}
		return nil
	case reflect.TypeFor[metav1.ObjectMeta]():
		// The API server owns the schema of metadata; a CRD may only say it is an object.
		if s.Type != "object" || len(s.Properties) > 0 {
			return []string{at + ": metadata must be a plain object"}
		}
		return nil
	}

	want, format := openAPIType(t)
	if s.Type != want {
		return []string{fmt.Sprintf("%s: the schema says type %q, the Go type %s needs %q", at, s.Type, t, want)}
	}
	if format != "" && s.Format != format {
		return []string{fmt.Sprintf("%s: the schema says format %q, the Go type %s needs %q", at, s.Format, t, format)}
	}

	switch t.Kind() {
	case reflect.Slice:
		if s.Items == nil || s.Items.Schema == nil {
			return []string{at + ": an array needs items"}
		}
		return schemaMismatches(path+"[*]", t.Elem(), s.Items.Schema)
	case reflect.Map:
		if s.AdditionalProperties == nil || s.AdditionalProperties.Schema == nil {
			return []string{at + ": a map needs additionalProperties with a schema"}
		}
		if len(s.Properties) > 0 {
			return []string{at + ": a map must not list properties"}
		}
		return schemaMismatches(path+"[*]", t.Elem(), s.AdditionalProperties.Schema)
	case reflect.Struct:
		var problems []string
		fields := jsonFields(t)
		for _, name := range slices.Sorted(maps.Keys(fields)) {
			prop, ok := s.Properties[name]
			if !ok {
				problems = append(problems, path+"."+name+": the Go field has no schema property")
				continue
			}
			problems = append(problems, schemaMismatches(path+"."+name, fields[name].typ, &prop)...)
		}
		for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
			if _, ok := fields[name]; !ok {
				problems = append(problems, path+"."+name+": the schema property has no Go field")
			}
		}
		for _, name := range s.Required {
			if f, ok := fields[name]; ok && f.omitempty {
				problems = append(problems, path+"."+name+": required in the schema, but the Go field is omitempty")
			}
		}
		return problems
	}
	return nil
}

type jsonField struct {
	typ       reflect.Type
	omitempty bool
}

// jsonFields lists the fields that encoding/json reads and writes, by their JSON name, with
// inlined structs flattened.
func jsonFields(t reflect.Type) map[string]jsonField {
	fields := map[string]jsonField{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			for n, inner := range jsonFields(f.Type) {
				fields[n] = inner
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = jsonField{typ: f.Type, omitempty: slices.Contains(strings.Split(opts, ","), "omitempty")}
	}
	return fields
}

// openAPIType is the schema type (and, for integers, the format) that encoding/json gives t.
func openAPIType(t reflect.Type) (typ, format string) {
	switch t.Kind() {
	case reflect.String:
		return "string", ""
	case reflect.Bool:
		return "boolean", ""
	case reflect.Int32, reflect.Uint32:
		return "integer", "int32"
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return "integer", "int64"
	case reflect.Int8, reflect.Int16, reflect.Uint8, reflect.Uint16:
		return "integer", ""
	case reflect.Float32, reflect.Float64:
		return "number", ""
	case reflect.Slice, reflect.Array:
		return "array", ""
	case reflect.Struct, reflect.Map:
		return "object", ""
	}
	return t.Kind().String(), ""
}

func ptrTrue(b *bool) bool { return b != nil && *b }

// The schema repeats validation.go's regular expressions; a change to one must reach the other.
func TestCRDPatternsAreValidationsPatterns(t *testing.T) {
	spec := loadCRD(t).Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	app := spec.Properties["app"]
	got := map[string]string{
		"spec.version":                 spec.Properties["version"].Pattern,
		"spec.image":                   spec.Properties["image"].Pattern,
		"spec.app.wsgi":                app.Properties["wsgi"].Pattern,
		"spec.app.asgi":                app.Properties["asgi"].Pattern,
		"spec.app.celeryApp":           app.Properties["celeryApp"].Pattern,
		"spec.app.channelLayers items": app.Properties["channelLayers"].Items.Schema.Pattern,
	}
	want := map[string]string{
		"spec.version":                 versionPattern.String(),
		"spec.image":                   imagePattern.String(),
		"spec.app.wsgi":                pythonRef.String(),
		"spec.app.asgi":                pythonRef.String(),
		"spec.app.celeryApp":           pythonRef.String(),
		"spec.app.channelLayers items": settingPattern.String(),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("patterns (-want validation.go +got crd.yaml):\n%s", diff)
	}
}

// verdict is whether the CRD (the API server) and Validate (the hook) accept an object.
type verdict struct{ CRD, Hook bool }

var (
	accepted = verdict{CRD: true, Hook: true}
	refused  = verdict{CRD: false, Hook: false}
	// refusedByHookOnly is a rule that the schema cannot express (see manifests/crd.yaml).
	refusedByHookOnly = verdict{CRD: true, Hook: false}
	// refusedByCRDOnly is an explicit empty value: the schema refuses it, the hook reads it as unset.
	refusedByCRDOnly = verdict{CRD: false, Hook: true}
)

// Each case runs through what the API server applies to a SummonPlatform on create (it drops
// nulls, then checks the schema, list types and CEL rules) and through Validate on what the server
// would store. Both must accept or both must refuse, but for the documented differences. The
// API-server integration tests check the same against a real server.
func TestCRDAndValidateAgree(t *testing.T) {
	validator, err := crdschema.NewValidator(loadCRD(t))
	if err != nil {
		t.Fatal(err)
	}

	tests := map[string]struct {
		name string // metadata.name; empty means car1-qa
		spec string // YAML
		want verdict
	}{
		"a platform with only a version is valid": {spec: `version: "108912-6e2f8b7-release-2019-8"`, want: accepted},
		"a platform with every field set is valid": {want: accepted, spec: `
version: v1.2.3
image: registry.example.com:5000/summon/platform
imagePullSecrets: [regcred]
hostname: car1-qa.example.com
aliases: [www.car1-qa.example.com, car1.example.org]
ingress: {className: nginx, annotations: {cert-manager.io/cluster-issuer: letsencrypt}, tlsSecretName: car1-tls, websocketPath: /socket/}
config: {DEBUG: true, SITE_NAME: Car One, MAX_UPLOAD_MB: 25, RATIO: 0.5}
secrets: [car1-inputs, car1-overrides]
replicas: {web: 3, daphne: 1, channelWorker: 1, celeryd: 2, static: 1, celeryBeat: 0}
resources:
  web: {requests: {cpu: 250m, memory: 512Mi}, limits: {memory: 1Gi}}
  celeryd: {requests: {cpu: 1}, claims: [{name: gpu, request: one}]}
autoscaling:
  web: {minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 60}
  celeryd: {minReplicas: 1, maxReplicas: 1}
app: {wsgi: "car.wsgi:application", asgi: "car.asgi:application", celeryApp: car, healthPath: /health/, channelLayers: [default, priority]}
gunicorn: {workers: 4, threads: 8, timeoutSeconds: 120}
celery: {concurrency: 8}
migrations: {command: [python, manage.py, migrate], backoffLimit: 0, activeDeadlineSeconds: 3600, attempt: 2, resources: {limits: {memory: 2Gi}}}
backups: {beforeMigration: BestEffort, keep: 10}
database: {shared: {host: postgres.db.svc, port: 5432, sslMode: verify-full}}
redis: {cacheMemory: 512Mi, channelsMemory: 128Mi}
deletionPolicy: Delete
paused: true
`},
		"a shared database on an IPv6 address is valid":  {spec: "version: v1\ndatabase: {shared: {host: 'fd00::10'}}", want: accepted},
		"a database URL from a Secret is valid":          {spec: "version: v1\ndatabase: {urlSecret: {name: car1-db, key: DATABASE_URL}}", want: accepted},
		"a backup policy Summon doesn't know is refused": {spec: "version: v1\nbackups: {beforeMigration: Sometimes}", want: refused},
		"keeping no backup is refused":                   {spec: "version: v1\nbackups: {keep: 0}", want: refused},
		"a name of 63 characters is valid":               {name: "a" + strings.Repeat("b", 62), spec: "version: v1", want: accepted},
		"an in-cluster database with defaults is valid":  {spec: "version: v1\ndatabase: {inCluster: {}}", want: accepted},
		"an in-cluster database of 5Gi on a class of its own with Delete is valid": {
			spec: "version: v1\ndeletionPolicy: Delete\ndatabase: {inCluster: {storageSize: 5Gi, storageClass: fast.example.com}}", want: accepted},
		"an in-cluster database sized in bytes is valid": {spec: "version: v1\ndatabase: {inCluster: {storageSize: 1073741824}}", want: accepted},
		"redis with defaults is valid":                   {spec: "version: v1\nredis: {}", want: accepted},
		"an external redis is valid":                     {spec: "version: v1\nredis: {urlSecret: {name: car1-redis, key: REDIS_URL}}", want: accepted},
		"redis memory of 16Mi and 64Gi is valid":         {spec: "version: v1\nredis: {cacheMemory: 64Gi, channelsMemory: 16Mi}", want: accepted},
		// The server drops a null it has no use for before it validates, so the hook never sees it.
		"a null config value is dropped, not refused": {spec: "version: v1\nconfig: {SECRET_KEY: null}", want: accepted},

		"a name with upper case letters is refused":                  {name: "Car1-qa", spec: "version: v1", want: refused},
		"a name of 64 characters is refused":                         {name: "a" + strings.Repeat("b", 63), spec: "version: v1", want: refused},
		"a name starting with a digit is refused":                    {name: "1car", spec: "version: v1", want: refused},
		"a platform without a version is refused":                    {spec: "paused: false", want: refused},
		"a version with a slash is refused":                          {spec: "version: release/1", want: refused},
		"a version of 64 characters is refused":                      {spec: "version: v" + strings.Repeat("1", 63), want: refused},
		"a version ending in a dot is refused":                       {spec: "version: v1.", want: refused},
		"an image with a tag is refused":                             {spec: "version: v1\nimage: registry.example.com/summon:v1", want: refused},
		"an image in upper case is refused":                          {spec: "version: v1\nimage: Registry.example.com/summon", want: refused},
		"a duplicate image pull secret is refused":                   {spec: "version: v1\nimagePullSecrets: [regcred, regcred]", want: refused},
		"an image pull secret in upper case is refused":              {spec: "version: v1\nimagePullSecrets: [RegCred]", want: refused},
		"a hostname in upper case is refused":                        {spec: "version: v1\nhostname: Car1.example.com", want: refused},
		"aliases without a hostname are refused":                     {spec: "version: v1\naliases: [car1.example.org]", want: refused},
		"an alias equal to the hostname is refused":                  {spec: "version: v1\nhostname: car1.example.com\naliases: [car1.example.com]", want: refused},
		"duplicate aliases are refused":                              {spec: "version: v1\nhostname: car1.example.com\naliases: [a.example.com, a.example.com]", want: refused},
		"an ingress class with an underscore is refused":             {spec: "version: v1\ningress: {className: my_class}", want: refused},
		"a TLS secret name in upper case is refused":                 {spec: "version: v1\ningress: {tlsSecretName: Car1-TLS}", want: refused},
		"a websocket path of / is refused":                           {spec: "version: v1\ningress: {websocketPath: /}", want: refused},
		"a websocket path under /static is refused":                  {spec: "version: v1\ningress: {websocketPath: /static/ws/}", want: refused},
		"a websocket path without a leading slash is refused":        {spec: "version: v1\ningress: {websocketPath: ws/}", want: refused},
		"a websocket path with a query is refused":                   {spec: "version: v1\ningress: {websocketPath: '/ws/?x=1'}", want: refused},
		"a websocket path with a tab is refused":                     {spec: "version: v1\ningress: {websocketPath: \"/ws/\\tx\"}", want: refused},
		"a config value that is a list is refused":                   {spec: "version: v1\nconfig: {ALLOWED_HOSTS: [a, b]}", want: refused},
		"a config value that is a map is refused":                    {spec: "version: v1\nconfig: {CACHES: {default: x}}", want: refused},
		"a config value that is an empty list is refused":            {spec: "version: v1\nconfig: {ALLOWED_HOSTS: []}", want: refused},
		"a config value that is an empty map is refused":             {spec: "version: v1\nconfig: {CACHES: {}}", want: refused},
		"a secret listed twice is refused":                           {spec: "version: v1\nsecrets: [car1-inputs, car1-inputs]", want: refused},
		"1001 web replicas are refused":                              {spec: "version: v1\nreplicas: {web: 1001}", want: refused},
		"negative daphne replicas are refused":                       {spec: "version: v1\nreplicas: {daphne: -1}", want: refused},
		"two celery beats are refused":                               {spec: "version: v1\nreplicas: {celeryBeat: 2}", want: refused},
		"maxReplicas below minReplicas is refused":                   {spec: "version: v1\nautoscaling: {web: {minReplicas: 3, maxReplicas: 2}}", want: refused},
		"autoscaling without minReplicas is refused":                 {spec: "version: v1\nautoscaling: {celeryd: {maxReplicas: 2}}", want: refused},
		"a CPU target above 100 percent is refused":                  {spec: "version: v1\nautoscaling: {web: {minReplicas: 1, maxReplicas: 2, targetCPUUtilizationPercentage: 101}}", want: refused},
		"a WSGI path with a dash is refused":                         {spec: "version: v1\napp: {wsgi: 'my-app.wsgi:application'}", want: refused},
		"a relative health path is refused":                          {spec: "version: v1\napp: {healthPath: healthz/}", want: refused},
		"a health path with a space is refused":                      {spec: "version: v1\napp: {healthPath: '/health z/'}", want: refused},
		"a channel layer with a dash is refused":                     {spec: "version: v1\napp: {channelLayers: [my-layer]}", want: refused},
		"65 gunicorn workers are refused":                            {spec: "version: v1\ngunicorn: {workers: 65}", want: refused},
		"a gunicorn timeout over an hour is refused":                 {spec: "version: v1\ngunicorn: {timeoutSeconds: 3601}", want: refused},
		"a celery concurrency of 257 is refused":                     {spec: "version: v1\ncelery: {concurrency: 257}", want: refused},
		"an empty migration command word is refused":                 {spec: "version: v1\nmigrations: {command: [python, '']}", want: refused},
		"eleven migration retries are refused":                       {spec: "version: v1\nmigrations: {backoffLimit: 11}", want: refused},
		"a migration deadline under a minute is refused":             {spec: "version: v1\nmigrations: {activeDeadlineSeconds: 59}", want: refused},
		"a negative migration attempt is refused":                    {spec: "version: v1\nmigrations: {attempt: -1}", want: refused},
		"both database kinds are refused":                            {spec: "version: v1\ndatabase: {shared: {host: pg}, urlSecret: {name: db, key: url}}", want: refused},
		"a shared database without a host is refused":                {spec: "version: v1\ndatabase: {shared: {port: 5432}}", want: refused},
		"a shared database host with an underscore is refused":       {spec: "version: v1\ndatabase: {shared: {host: pg_1}}", want: refused},
		"a shared database on port 70000 is refused":                 {spec: "version: v1\ndatabase: {shared: {host: pg, port: 70000}}", want: refused},
		"an unknown sslMode is refused":                              {spec: "version: v1\ndatabase: {shared: {host: pg, sslMode: always}}", want: refused},
		"a database URL Secret without a key is refused":             {spec: "version: v1\ndatabase: {urlSecret: {name: db}}", want: refused},
		"an in-cluster database beside a URL is refused":             {spec: "version: v1\ndatabase: {urlSecret: {name: db, key: url}, inCluster: {}}", want: refused},
		"an in-cluster database of 100Mi is refused":                 {spec: "version: v1\ndatabase: {inCluster: {storageSize: 100Mi}}", want: refused},
		"an in-cluster database size that is no quantity is refused": {spec: "version: v1\ndatabase: {inCluster: {storageSize: lots}}", want: refused},
		"a storage class with the default deletionPolicy is refused": {spec: "version: v1\ndatabase: {inCluster: {storageClass: fast}}", want: refused},
		"a storage class with deletionPolicy Retain is refused":      {spec: "version: v1\ndeletionPolicy: Retain\ndatabase: {inCluster: {storageClass: fast}}", want: refused},
		"a storage class in upper case is refused":                   {spec: "version: v1\ndeletionPolicy: Delete\ndatabase: {inCluster: {storageClass: Fast}}", want: refused},
		"an external redis that is also sized is refused":            {spec: "version: v1\nredis: {urlSecret: {name: r, key: url}, channelsMemory: 64Mi}", want: refused},
		"an external redis without a key is refused":                 {spec: "version: v1\nredis: {urlSecret: {name: r}}", want: refused},
		"a redis cache of 15Mi is refused":                           {spec: "version: v1\nredis: {cacheMemory: 15Mi}", want: refused},
		"a Channels layer of 65Gi is refused":                        {spec: "version: v1\nredis: {channelsMemory: 65Gi}", want: refused},
		"a redis cache of one byte is refused":                       {spec: "version: v1\nredis: {cacheMemory: 1}", want: refused},
		"an unknown deletionPolicy is refused":                       {spec: "version: v1\ndeletionPolicy: Orphan", want: refused},

		// CEL cannot see values under x-kubernetes-preserve-unknown-fields, so nothing in the
		// schema can check the keys of spec.config.
		"a setting name that is not a Python identifier is refused by the hook only": {spec: "version: v1\nconfig: {SITE-NAME: x}", want: refusedByHookOnly},

		"an explicit empty hostname is refused by the CRD only":         {spec: "version: v1\nhostname: ''", want: refusedByCRDOnly},
		"an explicit empty deletionPolicy is refused by the CRD only":   {spec: "version: v1\ndeletionPolicy: ''", want: refusedByCRDOnly},
		"an explicit shared database port 0 is refused by the CRD only": {spec: "version: v1\ndatabase: {shared: {host: pg, port: 0}}", want: refusedByCRDOnly},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objName := tc.name
			if objName == "" {
				objName = "car1-qa"
			}
			spec, err := yaml.YAMLToJSON([]byte(tc.spec))
			if err != nil {
				t.Fatalf("test spec: %v", err)
			}
			doc := fmt.Sprintf(`{"apiVersion":%q,"kind":%q,"metadata":{"name":%q,"namespace":"summon-qa"},"spec":%s}`, APIVersion, Kind, objName, spec)

			// util/json keeps whole numbers as int64, as the API server's decoder does.
			var obj map[string]any
			if err := json.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("decoding the object: %v", err)
			}
			fromCRD := validator.Validate(context.Background(), obj)

			// The hook reads what the server stored. A spec that does not decode (a list as a
			// config value) is one that the hook refuses too.
			stored, err := json.Marshal(obj)
			if err != nil {
				t.Fatalf("encoding the object: %v", err)
			}
			var fromHook field.ErrorList
			var p SummonPlatform
			if err := json.Unmarshal(stored, &p); err != nil {
				fromHook = field.ErrorList{field.InternalError(field.NewPath("spec"), err)}
			} else {
				fromHook = Validate(&p)
			}

			got := verdict{CRD: len(fromCRD) == 0, Hook: len(fromHook) == 0}
			if got != tc.want {
				t.Errorf("accepted by (-want +got):\n%s\nthe CRD says: %v\nValidate says: %v",
					cmp.Diff(tc.want, got), fromCRD.ToAggregate(), fromHook.ToAggregate())
			}
		})
	}
}
