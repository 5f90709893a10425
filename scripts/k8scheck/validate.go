package main

import (
	"fmt"
	"os"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	psapi "k8s.io/pod-security-admission/api"
	pspolicy "k8s.io/pod-security-admission/policy"
)

// workload is a pod template found in a rendered object.
type workload struct {
	kind, name, source string
	selector           *metav1.LabelSelector
	template           *corev1.PodTemplateSpec
}

type checker struct {
	problems  []string
	workloads []workload
	services  map[string]*corev1.Service
}

func (c *checker) add(source string, format string, args ...any) {
	c.problems = append(c.problems, source+": "+fmt.Sprintf(format, args...))
}

func (c *checker) addAll(source string, errs field.ErrorList) {
	for _, e := range errs {
		c.add(source, "%v", e)
	}
}

// validate runs the checks on decoded documents; crossRefs adds those between documents.
func validate(docs []Document, level psapi.Level, crossRefs bool) []string {
	c := &checker{services: map[string]*corev1.Service{}}
	for _, d := range docs {
		c.metadata(d)
		c.collect(d)
	}
	evaluator, err := pspolicy.NewEvaluator(pspolicy.DefaultChecks(), nil)
	if err != nil {
		return append(c.problems, fmt.Sprintf("pod security evaluator: %v", err))
	}
	for _, w := range c.workloads {
		c.podTemplate(w)
		c.podSecurity(evaluator, level, w)
	}
	if !crossRefs {
		fmt.Fprintln(os.Stderr, "k8scheck: references between documents not checked: some did not decode")
		return c.problems
	}
	for _, d := range docs {
		c.references(d, docs)
	}
	return c.problems
}

func nameRule(kind string) apivalidation.ValidateNameFunc {
	switch kind {
	case "Service":
		return apivalidation.NameIsDNS1035Label
	case "Namespace":
		return apivalidation.NameIsDNSLabel
	default:
		return apivalidation.NameIsDNSSubdomain
	}
}

func (c *checker) metadata(d Document) {
	accessor, ok := d.Object.(metav1.Object)
	if !ok {
		c.add(d.Source, "has no object metadata")
		return
	}
	kind := d.Object.GetObjectKind().GroupVersionKind().Kind
	namespaced := accessor.GetNamespace() != ""
	c.addAll(d.Source, apivalidation.ValidateObjectMetaAccessor(accessor, namespaced,
		nameRule(kind), field.NewPath("metadata")))
}

func (c *checker) collect(d Document) {
	switch o := d.Object.(type) {
	case *appsv1.Deployment:
		c.workloads = append(c.workloads, workload{"Deployment", o.Name, d.Source, o.Spec.Selector, &o.Spec.Template})
	case *appsv1.StatefulSet:
		c.workloads = append(c.workloads, workload{"StatefulSet", o.Name, d.Source, o.Spec.Selector, &o.Spec.Template})
	case *appsv1.DaemonSet:
		c.workloads = append(c.workloads, workload{"DaemonSet", o.Name, d.Source, o.Spec.Selector, &o.Spec.Template})
	case *batchv1.Job:
		c.workloads = append(c.workloads, workload{"Job", o.Name, d.Source, nil, &o.Spec.Template})
	case *batchv1.CronJob:
		c.workloads = append(c.workloads, workload{"CronJob", o.Name, d.Source, nil, &o.Spec.JobTemplate.Spec.Template})
	case *corev1.Pod:
		c.workloads = append(c.workloads, workload{"Pod", o.Name, d.Source, nil,
			&corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec}})
	case *corev1.Service:
		c.services[o.Name] = o
	}
}

func (c *checker) podSecurity(evaluator pspolicy.Evaluator, level psapi.Level, w workload) {
	lv := psapi.LevelVersion{Level: level, Version: psapi.LatestVersion()}
	result := pspolicy.AggregateCheckResults(evaluator.EvaluatePod(lv, &w.template.ObjectMeta, &w.template.Spec))
	if !result.Allowed {
		c.add(w.source, "violates PodSecurity %q: %s", lv.String(), result.ForbiddenDetail())
	}
}

func allContainers(spec *corev1.PodSpec) []corev1.Container {
	out := append([]corev1.Container{}, spec.InitContainers...)
	return append(out, spec.Containers...)
}

// podTemplate checks what the API server's pod validation would reject within one template.
func (c *checker) podTemplate(w workload) {
	spec := &w.template.Spec
	src := w.source
	if w.selector != nil {
		selector, err := metav1.LabelSelectorAsSelector(w.selector)
		switch {
		case err != nil:
			c.add(src, "spec.selector: %v", err)
		case selector.Empty():
			c.add(src, "spec.selector is empty")
		case !selector.Matches(labels.Set(w.template.Labels)):
			c.add(src, "spec.selector %v does not match the template's labels %v", selector, w.template.Labels)
		}
	}
	if len(spec.Containers) == 0 {
		c.add(src, "pod template has no containers")
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		if volumes[v.Name] {
			c.add(src, "volume %q is defined twice", v.Name)
		}
		volumes[v.Name] = true
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			c.add(src, "volume name %q: %s", v.Name, msg)
		}
	}
	names := map[string]bool{}
	for _, ct := range allContainers(spec) {
		if names[ct.Name] {
			c.add(src, "container name %q is used twice", ct.Name)
		}
		names[ct.Name] = true
		c.container(src, ct, volumes)
	}
}

func (c *checker) container(src string, ct corev1.Container, volumes map[string]bool) {
	where := fmt.Sprintf("container %q", ct.Name)
	for _, msg := range validation.IsDNS1123Label(ct.Name) {
		c.add(src, "%s: name: %s", where, msg)
	}
	if ct.Image == "" {
		c.add(src, "%s: no image", where)
	}
	ports := map[string]bool{}
	for _, p := range ct.Ports {
		if p.Name != "" {
			for _, msg := range validation.IsValidPortName(p.Name) {
				c.add(src, "%s: port name %q: %s", where, p.Name, msg)
			}
			ports[p.Name] = true
		}
		for _, msg := range validation.IsValidPortNum(int(p.ContainerPort)) {
			c.add(src, "%s: containerPort %d: %s", where, p.ContainerPort, msg)
		}
	}
	for _, e := range ct.Env {
		for _, msg := range validation.IsEnvVarName(e.Name) {
			c.add(src, "%s: env %q: %s", where, e.Name, msg)
		}
		if e.Value != "" && e.ValueFrom != nil {
			c.add(src, "%s: env %q has both value and valueFrom", where, e.Name)
		}
	}
	mounts := map[string]bool{}
	for _, m := range ct.VolumeMounts {
		if !volumes[m.Name] {
			c.add(src, "%s: volumeMount %q names no volume of the pod", where, m.Name)
		}
		if mounts[m.MountPath] {
			c.add(src, "%s: mountPath %q is mounted twice", where, m.MountPath)
		}
		mounts[m.MountPath] = true
	}
	for probeName, probe := range map[string]*corev1.Probe{
		"livenessProbe": ct.LivenessProbe, "readinessProbe": ct.ReadinessProbe, "startupProbe": ct.StartupProbe,
	} {
		c.probe(src, where+": "+probeName, probe, ports)
	}
	for name, limit := range ct.Resources.Limits {
		if request, ok := ct.Resources.Requests[name]; ok && request.Cmp(limit) > 0 {
			c.add(src, "%s: resources.requests.%s %s exceeds the limit %s", where, name, request.String(), limit.String())
		}
	}
}

func (c *checker) probe(src, where string, p *corev1.Probe, ports map[string]bool) {
	if p == nil {
		return
	}
	handlers := 0
	var port *intstr.IntOrString
	if p.HTTPGet != nil {
		handlers++
		port = &p.HTTPGet.Port
	}
	if p.TCPSocket != nil {
		handlers++
		port = &p.TCPSocket.Port
	}
	if p.Exec != nil {
		handlers++
	}
	if p.GRPC != nil {
		handlers++
	}
	if handlers != 1 {
		c.add(src, "%s: needs exactly one handler, has %d", where, handlers)
	}
	if port != nil && port.Type == intstr.String && !ports[port.StrVal] {
		c.add(src, "%s: port %q is not a named port of the container", where, port.StrVal)
	}
}

// references checks that objects pointing at other rendered objects find them.
func (c *checker) references(d Document, docs []Document) {
	switch o := d.Object.(type) {
	case *corev1.Service:
		c.service(d.Source, o)
	case *policyv1.PodDisruptionBudget:
		if o.Spec.MinAvailable != nil && o.Spec.MaxUnavailable != nil {
			c.add(d.Source, "sets both minAvailable and maxUnavailable")
		}
		if o.Spec.Selector == nil || len(c.matching(o.Spec.Selector)) == 0 {
			c.add(d.Source, "spec.selector matches no rendered pod template")
		}
	case *autoscalingv2.HorizontalPodAutoscaler:
		ref := o.Spec.ScaleTargetRef
		if !c.hasWorkload(ref.Kind, ref.Name) {
			c.add(d.Source, "scaleTargetRef %s/%s is not rendered", ref.Kind, ref.Name)
		}
		if o.Spec.MinReplicas != nil && *o.Spec.MinReplicas > o.Spec.MaxReplicas {
			c.add(d.Source, "minReplicas %d exceeds maxReplicas %d", *o.Spec.MinReplicas, o.Spec.MaxReplicas)
		}
	case *monitoringv1.ServiceMonitor:
		c.serviceMonitor(d.Source, o)
	case *kedav1alpha1.ScaledObject:
		c.scaledObject(d.Source, o, docs)
	case *kedav1alpha1.TriggerAuthentication:
		if _, err := o.ValidateCreate(nil); err != nil {
			c.add(d.Source, "KEDA refuses it: %v", err)
		}
		if !triggerAuthUsed(o.Name, docs) {
			c.add(d.Source, "no ScaledObject trigger of the render refers to TriggerAuthentication %s", o.Name)
		}
	}
}

// scaledObject runs the checks of KEDA's admission webhook that need no cluster, and resolves
// the scale target against the render.
func (c *checker) scaledObject(src string, so *kedav1alpha1.ScaledObject, docs []Document) {
	ref := so.Spec.ScaleTargetRef
	if ref == nil {
		c.add(src, "spec.scaleTargetRef is missing")
		return
	}
	kind := ref.Kind
	if kind == "" {
		kind = "Deployment" // KEDA's default
	}
	if !c.hasWorkload(kind, ref.Name) {
		c.add(src, "scaleTargetRef %s/%s is not rendered", kind, ref.Name)
	}
	if err := kedav1alpha1.CheckReplicaCountBoundsAreValid(so); err != nil {
		c.add(src, "KEDA refuses it: %v", err)
	}
	if err := kedav1alpha1.ValidateTriggers(so.Spec.Triggers); err != nil {
		c.add(src, "KEDA refuses it: %v", err)
	}
	if err := kedav1alpha1.CheckFallbackValid(so); err != nil {
		c.add(src, "KEDA refuses it: %v", err)
	}
	for _, d := range docs {
		if hpa, ok := d.Object.(*autoscalingv2.HorizontalPodAutoscaler); ok &&
			hpa.Spec.ScaleTargetRef.Kind == kind && hpa.Spec.ScaleTargetRef.Name == ref.Name {
			c.add(src, "HorizontalPodAutoscaler %s already scales %s/%s; KEDA refuses a second", hpa.Name, kind, ref.Name)
		}
	}
}

func triggerAuthUsed(name string, docs []Document) bool {
	for _, d := range docs {
		so, ok := d.Object.(*kedav1alpha1.ScaledObject)
		if !ok {
			continue
		}
		for _, t := range so.Spec.Triggers {
			ref := t.AuthenticationRef
			if ref != nil && ref.Name == name && (ref.Kind == "" || ref.Kind == "TriggerAuthentication") {
				return true
			}
		}
	}
	return false
}

func (c *checker) matching(sel *metav1.LabelSelector) []workload {
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || selector.Empty() {
		return nil
	}
	var out []workload
	for _, w := range c.workloads {
		if selector.Matches(labels.Set(w.template.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func (c *checker) hasWorkload(kind, name string) bool {
	for _, w := range c.workloads {
		if w.kind == kind && w.name == name {
			return true
		}
	}
	return false
}

func (c *checker) service(src string, svc *corev1.Service) {
	if len(svc.Spec.Selector) == 0 {
		return // endpoints managed elsewhere
	}
	pods := c.matching(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
	if len(pods) == 0 {
		c.add(src, "spec.selector %v matches no rendered pod template", svc.Spec.Selector)
		return
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.Type != intstr.String {
			continue
		}
		for _, w := range pods {
			if !namedPort(&w.template.Spec, p.TargetPort.StrVal) {
				c.add(src, "port %q: targetPort %q is not a named port of %s/%s", p.Name, p.TargetPort.StrVal, w.kind, w.name)
			}
		}
	}
}

func namedPort(spec *corev1.PodSpec, name string) bool {
	for _, ct := range spec.Containers {
		for _, p := range ct.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func (c *checker) serviceMonitor(src string, sm *monitoringv1.ServiceMonitor) {
	selector, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		c.add(src, "spec.selector: %v", err)
		return
	}
	var matched []*corev1.Service
	for _, svc := range c.services {
		if !selector.Empty() && selector.Matches(labels.Set(svc.Labels)) {
			matched = append(matched, svc)
		}
	}
	if len(matched) == 0 {
		c.add(src, "spec.selector %v matches no rendered Service", selector)
		return
	}
	for _, ep := range sm.Spec.Endpoints {
		if ep.Port == "" {
			continue
		}
		for _, svc := range matched {
			if !servicePort(svc, ep.Port) {
				c.add(src, "endpoint port %q is not a port of Service %s", ep.Port, svc.Name)
			}
		}
		if ep.Path != "" && !strings.HasPrefix(ep.Path, "/") {
			c.add(src, "endpoint path %q does not start with /", ep.Path)
		}
	}
}

func servicePort(svc *corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}
