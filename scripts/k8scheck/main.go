// Command k8scheck checks Kubernetes manifests against Kubernetes' own Go types, as an API server
// would before admitting them, without a cluster:
//
//   - every document decodes strictly into its k8s.io/api type (unknown or duplicate fields and
//     wrong types fail), and its kind must be one the checker knows;
//   - object metadata is valid (names, labels, annotations) as the API server validates it;
//   - pod templates pass the Pod Security Standards level given by -level (default "restricted"),
//     evaluated by k8s.io/pod-security-admission, the code the admission controller runs;
//   - references inside one render hold: selectors match the pod template, named ports and volume
//     mounts exist, Services, PDBs, HPAs and ServiceMonitors point at rendered objects;
//   - KEDA's ScaledObject and TriggerAuthentication (keda.sh/v1alpha1) decode strictly into KEDA's
//     own types and pass the checks KEDA's admission webhook runs without a cluster (replica
//     bounds, triggers, fallback, the TriggerAuthentication spec), the ScaledObject's target is
//     rendered and no HPA of the render targets it too (KEDA creates its own).
//
// Usage: k8scheck [-level restricted|baseline|privileged] [-q] [FILE...]   (no FILE: stdin)
//
// Each FILE is one render: multi-document YAML such as `helm template` prints; references are
// resolved within a file, never across files. It exits 0 when every document passes, 1 with one line per problem otherwise, 2 on a usage or read error.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/go-logr/logr"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Document is one decoded manifest and where it came from.
type Document struct {
	Source string // the file, and the template named by helm's "# Source:" comment
	Object runtime.Object
}

func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme,
		autoscalingv1.AddToScheme, autoscalingv2.AddToScheme, networkingv1.AddToScheme,
		rbacv1.AddToScheme, monitoringv1.AddToScheme, kedav1alpha1.AddToScheme,
	} {
		utilruntime.Must(add(scheme))
	}
	return scheme
}

// splitDocuments returns the non-empty YAML documents of r with the source each names.
func splitDocuments(name string, r io.Reader) ([][]byte, []string, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	var sources []string
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, sources, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		if isEmpty(doc) {
			continue
		}
		source := name
		for _, line := range strings.Split(string(doc), "\n") {
			if s, ok := strings.CutPrefix(line, "# Source: "); ok {
				source = name + " (" + strings.TrimSpace(s) + ")"
				break
			}
		}
		docs = append(docs, doc)
		sources = append(sources, source)
	}
}

func isEmpty(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && !bytes.Equal(line, []byte("---")) {
			return false
		}
	}
	return true
}

// decode turns each document into its typed object, strictly. A document with only strict errors
// (unknown or duplicate fields) still yields its object for the other checks; complete is false
// when some document yielded none, so checks across documents would only repeat that failure.
func decode(scheme *runtime.Scheme, docs [][]byte, sources []string) (out []Document, problems []string, complete bool) {
	codec := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	complete = true
	for i, doc := range docs {
		obj, gvk, err := codec.Decode(doc, nil, nil)
		where := sources[i]
		if gvk != nil && gvk.Kind != "" {
			where += " " + gvk.Kind
		}
		switch {
		case err == nil:
			out = append(out, Document{Source: where, Object: obj})
		case runtime.IsStrictDecodingError(err):
			if obj != nil {
				out = append(out, Document{Source: where, Object: obj})
			} else {
				complete = false
			}
			if strict, ok := runtime.AsStrictDecodingError(err); ok {
				for _, e := range strict.Errors() {
					problems = append(problems, fmt.Sprintf("%s: %v", where, e))
				}
			} else {
				problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			}
		case runtime.IsNotRegisteredError(err), runtime.IsMissingKind(err), runtime.IsMissingVersion(err):
			complete = false
			problems = append(problems, fmt.Sprintf("%s: not a known Kubernetes type: %v", where, err))
		default:
			complete = false
			problems = append(problems, fmt.Sprintf("%s: does not decode: %v", where, err))
		}
	}
	return out, problems, complete
}

func main() {
	level := flag.String("level", string(psapi.LevelRestricted),
		"Pod Security Standards level pod templates must meet: restricted, baseline or privileged")
	quiet := flag.Bool("q", false, "print problems only, no summary")
	version := flag.Bool("version", false, "print the Kubernetes modules it checks against, and exit")
	flag.Parse()
	// KEDA's validation logs through controller-runtime; nothing here reads those lines.
	ctrllog.SetLogger(logr.Discard())
	if *version {
		fmt.Println(modules())
		return
	}
	psLevel, err := psapi.ParseLevel(*level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8scheck:", err)
		os.Exit(2)
	}
	inputs := flag.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	scheme := newScheme()
	var problems []string
	documents, decoded := 0, 0
	// Each input is one render: references are resolved within it, never across inputs.
	for _, name := range inputs {
		docs, sources, err := readInput(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "k8scheck:", err)
			os.Exit(2)
		}
		objects, found, complete := decode(scheme, docs, sources)
		problems = append(problems, found...)
		problems = append(problems, validate(objects, psLevel, complete)...)
		documents, decoded = documents+len(docs), decoded+len(objects)
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if !*quiet {
		fmt.Fprintf(os.Stderr, "k8scheck: %d inputs, %d documents, %d decoded, %d problems (Pod Security %q)\n",
			len(inputs), documents, decoded, len(problems), psLevel)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

// modules names the versions of the type and policy modules this binary was built with.
func modules() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "k8scheck (module versions unknown)"
	}
	var parts []string
	for _, dep := range info.Deps {
		switch dep.Path {
		case "k8s.io/api", "k8s.io/apimachinery", "k8s.io/pod-security-admission",
			"github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring",
			"github.com/kedacore/keda/v2":
			parts = append(parts, dep.Path+" "+dep.Version)
		}
	}
	return "k8scheck: " + strings.Join(parts, ", ")
}

func readInput(name string) ([][]byte, []string, error) {
	if name == "-" {
		return splitDocuments("stdin", os.Stdin)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return splitDocuments(name, f)
}
