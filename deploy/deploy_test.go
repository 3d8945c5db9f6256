// Package deploy_test checks the deployment recipes in this folder
// statically: the Kubernetes manifests are decoded strictly into the
// k8s.io/api types, the compose file into a struct with known fields only,
// the systemd unit and the Dockerfile with small parsers, and each is checked
// for the properties that the scheduler's promises depend on (graceful
// shutdown within the orchestrator's kill timeout, Redis settings, secrets
// kept out of files and images, non-root, probes on /healthz and /readyz).
//
// What these tests cannot do: nothing here builds an image, starts a
// container, applies a manifest to a cluster or starts a systemd unit. The
// machines that run `go test ./...` have no container engine (a docker CLI at
// most, no daemon), no Kubernetes API server and no systemd as PID 1. So a
// base image tag that does not exist, a package that apt cannot install, a
// compose behaviour of a particular engine version or an admission policy of
// a particular cluster is not caught here; `docker build`, `docker compose
// config`, `kubectl apply --dry-run=server` and `systemd-analyze verify` are
// the next checks to run where those exist.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler"
)

// Files under test, relative to this folder.
const (
	dockerfilePath  = "Dockerfile"
	composePath     = "docker-compose.yml"
	envExamplePath  = "redcron.env.example"
	unitPath        = "redcron.service"
	k8sDir          = "kubernetes"
	k8sSecretSample = "kubernetes/redcron-secret.yaml.example"
	exampleJobs     = "../jobs.yaml" // the repository's example, mounted by compose
	dockerignore    = "../.dockerignore"
	statusPort      = 9090
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

// ---------------------------------------------------------------------------
// jobs.yaml: the grace a replica needs to stop

var registerStubs sync.Mutex

// parseJobs decodes a jobs.yaml with the project's decoder. env is the
// environment the replica would have (nil: empty). Go functions named by
// `func:` that this test binary does not have (they live in cmd/redcron or
// in the user's program) are registered as stubs taking any args: what is
// checked here is the rest of the file.
func parseJobs(t *testing.T, name string, data []byte, env map[string]string) *jobs.Config {
	t.Helper()
	var doc struct {
		Jobs map[string]struct {
			Func string `yaml:"func"`
		} `yaml:"jobs"`
	}
	_ = yaml.Unmarshal(data, &doc) // errors are jobs.Parse's to report
	registerStubs.Lock()
	have := jobs.Registered()
	for _, j := range doc.Jobs {
		if j.Func != "" && !slices.Contains(have, j.Func) {
			jobs.Register(j.Func, func(context.Context, jobs.Run, map[string]any) error { return nil })
			have = append(have, j.Func)
		}
	}
	registerStubs.Unlock()
	cfg, err := jobs.Parse(name, data, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("%s is not a valid jobs.yaml:\n%v", name, err)
	}
	return cfg
}

// stopBudget is how long a replica with cfg may take to stop after SIGTERM:
// shutdown_grace for running jobs, then the longest kill_grace of its
// command jobs (SIGTERM to SIGKILL), before it records outcomes and exits.
func stopBudget(cfg *jobs.Config) time.Duration {
	grace := cfg.ShutdownGrace
	if grace == 0 {
		grace = scheduler.DefaultShutdownGrace
	}
	var kill time.Duration
	for _, j := range cfg.Jobs {
		if j.Command != nil {
			kill = max(kill, j.Command.KillGrace)
		}
	}
	return grace + kill
}

func hasCommandJobs(cfg *jobs.Config) bool {
	for _, j := range cfg.Jobs {
		if j.Command != nil {
			return true
		}
	}
	return false
}

// secretName reports whether an environment variable's name says it holds
// a secret.
var secretName = regexp.MustCompile(`(?i)(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY)`)

// ---------------------------------------------------------------------------
// Kubernetes

type k8sObjects struct {
	deployments []*appsv1.Deployment
	pdbs        []*policyv1.PodDisruptionBudget
	secrets     []*corev1.Secret
	configMaps  []*corev1.ConfigMap
	services    []*corev1.Service
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// splitYAMLDocs splits a multi-document YAML file on "---" lines and drops
// documents that hold only comments and blank lines.
func splitYAMLDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSep.Split(string(data), -1) {
		empty := true
		for _, l := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// decodeK8s decodes every document of the files strictly (unknown fields
// and duplicate keys are errors) into its k8s.io/api type.
func decodeK8s(t *testing.T, files ...string) *k8sObjects {
	t.Helper()
	objs := &k8sObjects{}
	for _, f := range files {
		for i, doc := range splitYAMLDocs(readFile(t, f)) {
			var tm metav1.TypeMeta
			if err := k8syaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: document %d: %v", f, i+1, err)
			}
			var obj any
			want := ""
			switch tm.Kind {
			case "Deployment":
				o := &appsv1.Deployment{}
				obj, want, objs.deployments = o, "apps/v1", append(objs.deployments, o)
			case "PodDisruptionBudget":
				o := &policyv1.PodDisruptionBudget{}
				obj, want, objs.pdbs = o, "policy/v1", append(objs.pdbs, o)
			case "Secret":
				o := &corev1.Secret{}
				obj, want, objs.secrets = o, "v1", append(objs.secrets, o)
			case "ConfigMap":
				o := &corev1.ConfigMap{}
				obj, want, objs.configMaps = o, "v1", append(objs.configMaps, o)
			case "Service":
				o := &corev1.Service{}
				obj, want, objs.services = o, "v1", append(objs.services, o)
			default:
				t.Fatalf("%s: document %d: kind %q is not checked by this test: add it", f, i+1, tm.Kind)
			}
			if tm.APIVersion != want {
				t.Errorf("%s: %s: apiVersion %q, want %q", f, tm.Kind, tm.APIVersion, want)
			}
			if err := k8syaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s: document %d (%s): strict decode: %v", f, i+1, tm.Kind, err)
			}
		}
	}
	return objs
}

// k8sManifests are the files `kubectl apply -f deploy/kubernetes/` applies.
func k8sManifests(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml", "*.json"} {
		m, err := filepath.Glob(filepath.Join(k8sDir, pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", k8sDir)
	}
	return files
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("label selector: %v", err)
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// findEnv returns the container's variable named name.
func findEnv(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// flagValue returns the value of --name in args ("--name v" or "--name=v").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, p := range []string{"--" + name, "-" + name} {
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

func TestKubernetesManifests(t *testing.T) {
	objs := decodeK8s(t, k8sManifests(t)...)
	if len(objs.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(objs.deployments))
	}
	if len(objs.secrets) != 0 {
		t.Errorf("a Secret in the applied manifests: its values would be committed; keep only the example (%s) and create it with kubectl create secret", k8sSecretSample)
	}
	d := objs.deployments[0]
	pod := &d.Spec.Template
	ps := &pod.Spec

	t.Run("replicas and selector", func(t *testing.T) {
		if d.Spec.Replicas == nil || *d.Spec.Replicas < 3 {
			t.Errorf("replicas = %v, want at least 3", d.Spec.Replicas)
		}
		if !selects(t, d.Spec.Selector, pod.Labels) {
			t.Errorf("the Deployment's selector %v does not select its pod template labels %v", d.Spec.Selector, pod.Labels)
		}
	})

	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := &ps.Containers[0]

	t.Run("image", func(t *testing.T) {
		img := c.Image
		name, digest, _ := strings.Cut(img, "@")
		tag := ""
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			tag = name[i+1:]
		}
		switch {
		case tag == "" && digest == "":
			t.Errorf("image %q has neither tag nor digest (means :latest)", img)
		case tag == "latest":
			t.Errorf("image %q: use a version tag (and pin its digest), not :latest", img)
		case !strings.Contains(strings.SplitN(name, "/", 2)[0], "."):
			t.Errorf("image %q: name a registry (e.g. ghcr.io/OWNER/redcron:v1.0.0)", img)
		}
		if c.ImagePullPolicy != corev1.PullIfNotPresent {
			t.Errorf("imagePullPolicy %q, want IfNotPresent", c.ImagePullPolicy)
		}
	})

	t.Run("securityContext", func(t *testing.T) {
		csc, psc := c.SecurityContext, ps.SecurityContext
		if csc == nil {
			t.Fatal("the container has no securityContext")
		}
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		isTrue := func(p *bool) bool { return p != nil && *p }
		if !isTrue(csc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
			t.Error("runAsNonRoot is not true")
		}
		if u := csc.RunAsUser; u != nil && *u == 0 {
			t.Error("container runAsUser 0")
		}
		if u := psc.RunAsUser; u != nil && *u == 0 {
			t.Error("pod runAsUser 0")
		}
		if !isTrue(csc.ReadOnlyRootFilesystem) {
			t.Error("readOnlyRootFilesystem is not true")
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation is not false")
		}
		if csc.Privileged != nil && *csc.Privileged {
			t.Error("privileged")
		}
		if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
			t.Error("capabilities do not drop ALL")
		} else if len(csc.Capabilities.Add) > 0 {
			t.Errorf("capabilities added: %v", csc.Capabilities.Add)
		}
		sp := csc.SeccompProfile
		if sp == nil {
			sp = psc.SeccompProfile
		}
		if sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Error("seccompProfile is not RuntimeDefault")
		}
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Error("automountServiceAccountToken is not false (redcron never calls the API server)")
		}
	})

	// The ConfigMap mounted where --config points.
	args := append(slices.Clone(c.Command), c.Args...)
	if len(args) == 0 || args[0] != "run" {
		t.Fatalf("container args %q: want `run --config ...` (the image's ENTRYPOINT is redcron)", args)
	}
	configPath, ok := flagValue(args, "config")
	if !ok {
		t.Fatalf("container args %q have no --config", args)
	}
	var cm *corev1.ConfigMap
	var cmKey string
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, configPath)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range ps.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			for _, o := range objs.configMaps {
				if o.Name == v.ConfigMap.Name {
					cm, cmKey = o, path.Join(m.SubPath, rel)
				}
			}
			if m.SubPath != "" {
				t.Errorf("the config is mounted with subPath %q: the kubelet never updates it, so SIGHUP reloads see the old file", m.SubPath)
			}
			if !m.ReadOnly {
				t.Errorf("the config volume %q is not mounted readOnly", m.Name)
			}
		}
	}
	if cm == nil {
		t.Fatalf("no ConfigMap in %s is mounted at --config %s", k8sDir, configPath)
	}
	jobsYAML, ok := cm.Data[cmKey]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q (the file --config names)", cm.Name, cmKey)
	}

	// The environment the replica has: literal values, and placeholders for
	// values from Secrets and the downward API.
	podEnv := map[string]string{}
	for _, e := range c.Env {
		podEnv[e.Name] = e.Value
		if e.ValueFrom != nil {
			podEnv[e.Name] = "from-" + e.Name
		}
	}
	cfg := parseJobs(t, "ConfigMap "+cm.Name+" "+cmKey, []byte(jobsYAML), podEnv)

	t.Run("config", func(t *testing.T) {
		rc := cfg.Redis
		if rc.URL == "" && rc.Sentinel == nil && len(rc.Cluster) == 0 && len(rc.Quorum) == 0 && podEnv["REDCRON_REDIS_URL"] == "" {
			t.Error("no Redis configured: every pod would start its own embedded trial server")
		}
		if u, err := url.Parse(rc.URL); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				t.Errorf("the ConfigMap's redis.url carries a password: take it from the Secret")
			}
		}
		if u, err := url.Parse(podEnv["REDCRON_REDIS_URL"]); err == nil && u.User != nil {
			t.Errorf("REDCRON_REDIS_URL is a literal with credentials: take it from the Secret")
		}
	})

	t.Run("checksum annotation", func(t *testing.T) {
		sum := sha256.Sum256([]byte(jobsYAML))
		want := hex.EncodeToString(sum[:])
		got, ok := pod.Annotations["checksum/config"]
		if !ok {
			t.Fatal("the pod template has no checksum/config annotation: a ConfigMap change would not roll the pods")
		}
		if got != want {
			t.Errorf("checksum/config = %q, but the sha256 of ConfigMap %s's %s is %q: update the annotation with the ConfigMap", got, cm.Name, cmKey, want)
		}
	})

	t.Run("graceful shutdown", func(t *testing.T) {
		budget := stopBudget(cfg)
		g := ps.TerminationGracePeriodSeconds
		if g == nil {
			t.Fatalf("no terminationGracePeriodSeconds (default 30s); want more than shutdown_grace + kill_grace = %s", budget)
		}
		if got := time.Duration(*g) * time.Second; got <= budget {
			t.Errorf("terminationGracePeriodSeconds = %s, want more than shutdown_grace + kill_grace = %s: the kubelet would SIGKILL running jobs before their outcome is recorded", got, budget)
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			t.Error("a preStop hook delays SIGTERM and eats into the grace period")
		}
	})

	t.Run("secrets", func(t *testing.T) {
		for _, want := range []string{"REDCRON_HTTP_TOKEN", "REDCRON_REDIS_PASSWORD"} {
			e := findEnv(c, want)
			if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s does not come from a Secret (env valueFrom secretKeyRef)", want)
			}
		}
		for _, e := range c.Env {
			if secretName.MatchString(e.Name) && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				t.Errorf("env %s looks secret but is not from a secretKeyRef", e.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil {
				t.Errorf("envFrom ConfigMap %s: secrets belong in a Secret", ef.ConfigMapRef.Name)
			}
		}
		// The example Secret has every key the pod reads, and placeholders only.
		sample := decodeK8s(t, k8sSecretSample)
		if len(sample.secrets) != 1 || len(sample.deployments)+len(sample.configMaps)+len(sample.pdbs)+len(sample.services) != 0 {
			t.Fatalf("%s: want exactly one Secret", k8sSecretSample)
		}
		s := sample.secrets[0]
		for _, e := range c.Env {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			_, inString := s.StringData[ref.Key]
			_, inData := s.Data[ref.Key]
			if ref.Name != s.Name || !(inString || inData) {
				t.Errorf("env %s reads Secret %s key %q, which %s does not show", e.Name, ref.Name, ref.Key, k8sSecretSample)
			}
		}
		for k, v := range s.StringData {
			if !strings.Contains(v, "REPLACE") {
				t.Errorf("%s: stringData %s = %q is not a placeholder", k8sSecretSample, k, v)
			}
		}
		if len(s.Data) != 0 {
			t.Errorf("%s: use stringData placeholders, not data", k8sSecretSample)
		}
		if !bytes.Contains(readFile(t, k8sSecretSample), []byte("kubectl create secret")) {
			t.Errorf("%s does not say to create the Secret with kubectl create secret", k8sSecretSample)
		}
	})

	t.Run("replica name", func(t *testing.T) {
		e := findEnv(c, "REDCRON_REPLICA")
		if e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Error("REDCRON_REPLICA is not the pod name (valueFrom fieldRef metadata.name)")
		}
	})

	// The container port that --http listens on.
	httpAddr, ok := flagValue(args, "http")
	if !ok {
		t.Fatal("no --http: the probes need the status endpoints (the default binds loopback, which the kubelet cannot reach)")
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		t.Fatalf("--http %q: %v", httpAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsLoopback()) || host == "localhost" {
		t.Errorf("--http %q binds loopback: the kubelet's probes cannot reach it; bind 0.0.0.0 inside the pod", httpAddr)
	}
	if port != strconv.Itoa(statusPort) {
		t.Errorf("--http port %s, want %d", port, statusPort)
	}
	portOf := func(p intstr.IntOrString) int32 {
		if p.Type == intstr.Int {
			return p.IntVal
		}
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return cp.ContainerPort
			}
		}
		return -1
	}

	t.Run("probes", func(t *testing.T) {
		for _, pr := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
			if pr.probe == nil || pr.probe.HTTPGet == nil {
				t.Errorf("no %s httpGet", pr.name)
				continue
			}
			if pr.probe.HTTPGet.Path != pr.path {
				t.Errorf("%s path %q, want %s", pr.name, pr.probe.HTTPGet.Path, pr.path)
			}
			if got := portOf(pr.probe.HTTPGet.Port); got != statusPort {
				t.Errorf("%s port %v is %d, want the --http port %d", pr.name, pr.probe.HTTPGet.Port.String(), got, statusPort)
			}
		}
	})

	t.Run("read-only root and /tmp", func(t *testing.T) {
		found := false
		for _, m := range c.VolumeMounts {
			if m.MountPath != "/tmp" {
				continue
			}
			for _, v := range ps.Volumes {
				if v.Name == m.Name && v.EmptyDir != nil {
					found = !m.ReadOnly
				}
			}
		}
		if !found {
			t.Error("no writable emptyDir at /tmp: with a read-only root file system jobs have nowhere to write temporary files")
		}
	})

	t.Run("resources", func(t *testing.T) {
		r := c.Resources
		if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() {
			t.Error("no cpu and memory requests")
		}
		if r.Limits.Memory().IsZero() {
			t.Error("no memory limit")
		}
		// The Go heap's soft limit sits below the container's, so that the
		// GC works harder before the kernel kills the pod (100,000 jobs
		// take about 270 MiB without it, 200 MiB with 200MiB).
		e := findEnv(c, "GOMEMLIMIT")
		if e == nil {
			t.Fatal("no GOMEMLIMIT: the Go runtime does not know the container's memory limit")
		}
		soft, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B")) // 200MiB -> 200Mi
		if err != nil {
			t.Fatalf("GOMEMLIMIT %q: %v", e.Value, err)
		}
		if lim := r.Limits.Memory().Value(); soft.Value() <= 0 || soft.Value() > lim*9/10 {
			t.Errorf("GOMEMLIMIT %s = %d bytes, want above 0 and at most 90 %% of limits.memory (%d bytes): room for the runtime and command jobs' processes", e.Value, soft.Value(), lim)
		}
	})

	t.Run("spread", func(t *testing.T) {
		spread := false
		if a := ps.Affinity; a != nil && a.PodAntiAffinity != nil {
			terms := a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
			for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
				terms = append(terms, w.PodAffinityTerm)
			}
			for _, term := range terms {
				if term.TopologyKey == "kubernetes.io/hostname" && selects(t, term.LabelSelector, pod.Labels) {
					spread = true
				}
			}
		}
		for _, tsc := range ps.TopologySpreadConstraints {
			if tsc.TopologyKey == "kubernetes.io/hostname" && selects(t, tsc.LabelSelector, pod.Labels) {
				spread = true
			}
		}
		if !spread {
			t.Error("nothing spreads the replicas across nodes (pod anti-affinity or a topology spread on kubernetes.io/hostname selecting the pods)")
		}
	})

	t.Run("PodDisruptionBudget", func(t *testing.T) {
		if len(objs.pdbs) != 1 {
			t.Fatalf("%d PodDisruptionBudgets, want 1", len(objs.pdbs))
		}
		p := objs.pdbs[0]
		if !selects(t, p.Spec.Selector, pod.Labels) {
			t.Errorf("the PDB's selector %v does not select the Deployment's pods %v", p.Spec.Selector, pod.Labels)
		}
		replicas := int(*d.Spec.Replicas)
		var available int
		switch {
		case p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil:
			t.Fatal("both minAvailable and maxUnavailable")
		case p.Spec.MinAvailable != nil:
			v, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MinAvailable, replicas, true)
			if err != nil {
				t.Fatal(err)
			}
			available = v
		case p.Spec.MaxUnavailable != nil:
			v, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MaxUnavailable, replicas, false)
			if err != nil {
				t.Fatal(err)
			}
			available = replicas - v
		default:
			t.Fatal("neither minAvailable nor maxUnavailable")
		}
		if available < 2 || available >= replicas {
			t.Errorf("the PDB keeps %d of %d replicas up: want at least 2, and room for one drain at a time", available, replicas)
		}
	})

	t.Run("Service", func(t *testing.T) {
		for _, s := range objs.services {
			if s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("Service %s is %s: the dashboard and its read API have no authentication; keep it ClusterIP", s.Name, s.Spec.Type)
			}
			if len(s.Spec.ExternalIPs) > 0 || s.Spec.LoadBalancerIP != "" {
				t.Errorf("Service %s has external addresses", s.Name)
			}
			if !selects(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, pod.Labels) {
				t.Errorf("Service %s does not select the pods", s.Name)
			}
			for _, p := range s.Spec.Ports {
				if got := portOf(p.TargetPort); got != statusPort {
					t.Errorf("Service %s port %s targets %d, want %d", s.Name, p.Name, got, statusPort)
				}
			}
		}
	})
}

// TestKubernetesSplitDocs guards the splitter the test relies on.
func TestKubernetesSplitDocs(t *testing.T) {
	in := "# head\na: 1\n---\n# only a comment\n--- # end\nb: |\n  ---x\n  c\n"
	docs := splitYAMLDocs([]byte(in))
	if len(docs) != 2 || !strings.Contains(string(docs[1]), "---x") {
		t.Fatalf("split into %q", docs)
	}
}

// ---------------------------------------------------------------------------
// docker compose

type composeFile struct {
	Name     string                    `yaml:"name"`
	XRedcron yaml.Node                 `yaml:"x-redcron"` // the replicas' shared settings, merged with <<
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image           string               `yaml:"image"`
	Build           *composeBuild        `yaml:"build"`
	PullPolicy      string               `yaml:"pull_policy"`
	Command         stringOrList         `yaml:"command"`
	Environment     map[string]string    `yaml:"environment"`
	EnvFile         []string             `yaml:"env_file"`
	Volumes         []string             `yaml:"volumes"`
	Ports           []string             `yaml:"ports"`
	DependsOn       map[string]dependsOn `yaml:"depends_on"`
	Healthcheck     *composeHealth       `yaml:"healthcheck"`
	StopGracePeriod string               `yaml:"stop_grace_period"`
	StopSignal      string               `yaml:"stop_signal"`
	Restart         string               `yaml:"restart"`
	ReadOnly        bool                 `yaml:"read_only"`
	Tmpfs           []string             `yaml:"tmpfs"`
	SecurityOpt     []string             `yaml:"security_opt"`
	CapDrop         []string             `yaml:"cap_drop"`
	User            string               `yaml:"user"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
	Target     string `yaml:"target"`
}

type dependsOn struct {
	Condition string `yaml:"condition"`
}

type composeHealth struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	StartPeriod string   `yaml:"start_period"`
	Retries     int      `yaml:"retries"`
}

// stringOrList is a compose command: a list, or a string split on spaces.
type stringOrList []string

func (s *stringOrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = strings.Fields(n.Value)
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*s = l
	return nil
}

func decodeCompose(t *testing.T) *composeFile {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, composePath)))
	dec.KnownFields(true)
	var f composeFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	return &f
}

// redisArgs reads "--name value" pairs from a redis-server command line.
func redisArgs(cmd []string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(cmd); i++ {
		if k, ok := strings.CutPrefix(cmd[i], "--"); ok && i+1 < len(cmd) {
			m[k] = cmd[i+1]
			i++
		}
	}
	return m
}

func TestCompose(t *testing.T) {
	f := decodeCompose(t)
	df := parseDockerfile(t)

	redis, ok := f.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	t.Run("redis", func(t *testing.T) {
		if len(redis.Command) == 0 || redis.Command[0] != "redis-server" {
			t.Fatalf("redis command %q does not start redis-server", redis.Command)
		}
		got := redisArgs(redis.Command[1:])
		for k, want := range map[string]string{"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"} {
			if got[k] != want {
				t.Errorf("redis --%s %q, want %q", k, got[k], want)
			}
		}
		if redis.Healthcheck == nil || len(redis.Healthcheck.Test) == 0 {
			t.Error("redis has no healthcheck (the replicas wait for it)")
		}
		if len(redis.Ports) > 0 {
			t.Errorf("redis publishes %v on the host", redis.Ports)
		}
		if !slices.ContainsFunc(redis.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/data") }) {
			t.Error("redis keeps its AOF in the container: mount a volume at /data")
		}
	})

	var builders, replicas []string
	for name, s := range f.Services {
		if s.Build != nil {
			builders = append(builders, name)
		}
		if name != "redis" {
			replicas = append(replicas, name)
		}
	}
	slices.Sort(replicas)
	if len(builders) != 1 {
		t.Fatalf("services with a build: %v; want exactly one, the others running its image", builders)
	}
	if len(replicas) != 3 {
		t.Fatalf("replica services %v, want 3", replicas)
	}
	builder := f.Services[builders[0]]
	image := builder.Image

	t.Run("one image", func(t *testing.T) {
		b := builder.Build
		if image == "" {
			t.Fatalf("%s builds without naming the image: the other replicas cannot reuse it", builders[0])
		}
		if filepath.Clean(b.Context) != ".." || b.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("build context %q dockerfile %q, want the repository root and deploy/Dockerfile", b.Context, b.Dockerfile)
		}
		if df.stage(b.Target) == nil {
			t.Errorf("build target %q is not a stage of the Dockerfile", b.Target)
		}
		for _, name := range replicas {
			s := f.Services[name]
			if s.Image != image {
				t.Errorf("%s runs image %q, want the built %q", name, s.Image, image)
			}
			if s.Build == nil && s.PullPolicy != "never" {
				t.Errorf("%s: pull_policy %q; want never (the image is built by %s, never pulled)", name, s.PullPolicy, builders[0])
			}
		}
	})

	exJobs := parseJobs(t, exampleJobs, readFile(t, exampleJobs), map[string]string{"REDCRON_REDIS_URL": "redis://redis:6379/0"})
	t.Run("image fits the jobs", func(t *testing.T) {
		st := df.stage(builder.Build.Target)
		if st != nil && hasCommandJobs(exJobs) && !st.hasShell() {
			t.Errorf("%s has command jobs but the compose image is target %q (%s), which has no shell or programs", exampleJobs, st.name, st.base)
		}
	})

	hostPorts := map[string]string{}
	replicaIDs := map[string]bool{}
	for _, name := range replicas {
		s := f.Services[name]
		t.Run(name, func(t *testing.T) {
			if s.DependsOn["redis"].Condition != "service_healthy" {
				t.Error("does not wait for redis to be healthy")
			}
			if s.Environment["REDCRON_REDIS_URL"] == "" {
				t.Error("no REDCRON_REDIS_URL: it would start an embedded trial server")
			}
			id := s.Environment["REDCRON_REPLICA"]
			if id == "" || replicaIDs[id] {
				t.Errorf("REDCRON_REPLICA %q is empty or not unique", id)
			}
			replicaIDs[id] = true
			for k, v := range s.Environment {
				if secretName.MatchString(k) && v != "" {
					t.Errorf("environment %s is written in the compose file: put it in the env_file", k)
				}
			}
			if !slices.Contains(s.EnvFile, "redcron.env") {
				t.Errorf("env_file %v, want redcron.env (REDCRON_HTTP_TOKEN)", s.EnvFile)
			}
			published := false
			for _, p := range s.Ports {
				parts := strings.Split(p, ":")
				if len(parts) != 3 || parts[0] != "127.0.0.1" {
					t.Errorf("port %q is not published on 127.0.0.1 only", p)
					continue
				}
				if parts[2] == strconv.Itoa(statusPort) {
					published = true
				}
				if other, dup := hostPorts[parts[1]]; dup {
					t.Errorf("host port %s published by %s too", parts[1], other)
				}
				hostPorts[parts[1]] = name
			}
			if !published {
				t.Errorf("the status port %d is not published (on 127.0.0.1)", statusPort)
			}
			hc := s.Healthcheck
			if hc == nil || len(hc.Test) < 2 || !strings.Contains(strings.Join(hc.Test, " "), fmt.Sprintf("127.0.0.1:%d/healthz", statusPort)) {
				t.Fatalf("healthcheck %+v does not probe /healthz on port %d", hc, statusPort)
			}
			if hc.Test[0] != "CMD" {
				t.Errorf("healthcheck %q: use the exec form [CMD, ...]", hc.Test)
			}
			if st := df.stage(builder.Build.Target); st != nil && !st.provides(hc.Test[1]) {
				t.Errorf("healthcheck runs %q, which the image (target %s) does not install", hc.Test[1], st.name)
			}
			sgp, err := time.ParseDuration(s.StopGracePeriod)
			if err != nil {
				t.Fatalf("stop_grace_period %q: %v (the default, 10s, kills running jobs)", s.StopGracePeriod, err)
			}
			if budget := stopBudget(exJobs); sgp <= budget {
				t.Errorf("stop_grace_period %s, want more than shutdown_grace + kill_grace = %s of %s", sgp, budget, exampleJobs)
			}
			if s.StopSignal != "" && s.StopSignal != "SIGTERM" {
				t.Errorf("stop_signal %s: redcron stops gracefully on SIGTERM", s.StopSignal)
			}
			if !slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasPrefix(v, "../jobs.yaml:/etc/redcron/jobs.yaml") }) {
				t.Error("does not mount ../jobs.yaml at /etc/redcron/jobs.yaml")
			}
		})
	}

	t.Run("env file", func(t *testing.T) {
		ex := string(readFile(t, envExamplePath))
		if !regexp.MustCompile(`(?m)^REDCRON_HTTP_TOKEN=`).MatchString(ex) {
			t.Errorf("%s does not set REDCRON_HTTP_TOKEN", envExamplePath)
		}
		gi := string(readFile(t, ".gitignore"))
		if !regexp.MustCompile(`(?m)^/?redcron\.env$`).MatchString(gi) {
			t.Error("deploy/.gitignore does not ignore redcron.env")
		}
		ign := readDockerignore(t)
		if !ign.excluded("deploy/redcron.env") {
			t.Error(".dockerignore lets deploy/redcron.env into the build context")
		}
	})
}

// TestComposeYAMLMergeKnownFields guards the decoder: yaml.v3's KnownFields
// must still see keys merged with <<.
func TestComposeYAMLMergeKnownFields(t *testing.T) {
	in := "x: &x {image: a, nope: 1}\nservices:\n  s:\n    <<: *x\n"
	dec := yaml.NewDecoder(strings.NewReader(in))
	dec.KnownFields(true)
	var f struct {
		X        yaml.Node                 `yaml:"x"`
		Services map[string]composeService `yaml:"services"`
	}
	if err := dec.Decode(&f); err == nil {
		t.Fatal("an unknown key merged with << went unnoticed")
	}
}

// ---------------------------------------------------------------------------
// systemd

type unitFile struct {
	sections map[string]map[string][]string
	comments []string
}

func (u *unitFile) get(section, key string) []string { return u.sections[section][key] }

func (u *unitFile) last(section, key string) string {
	v := u.get(section, key)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// parseUnit reads a systemd unit: [Section] headers, Key=Value lines (a key
// may repeat; an empty value resets the list, as systemd does for list
// settings), '#' and ';' comments, and '\' line continuations.
func parseUnit(t *testing.T, data []byte) *unitFile {
	t.Helper()
	u := &unitFile{sections: map[string]map[string][]string{}}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			u.comments = append(u.comments, line)
			continue
		}
		for strings.HasSuffix(line, `\`) && sc.Scan() {
			lineNo++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(sc.Text())
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u.sections[section] == nil {
				u.sections[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is neither a section nor Key=Value", unitPath, lineNo, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if v == "" {
				u.sections[section][k] = []string{""}
				continue
			}
			u.sections[section][k] = append(u.sections[section][k], v)
		}
	}
	return u
}

// parseTimespan reads a systemd time span: "45", "45s", "1min 30s", "2m".
func parseTimespan(s string) (time.Duration, error) {
	units := map[string]time.Duration{
		"": time.Second, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
	}
	re := regexp.MustCompile(`^\s*(\d+)\s*([a-z]*)`)
	var total time.Duration
	rest := s
	for strings.TrimSpace(rest) != "" {
		m := re.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("bad time span %q", s)
		}
		n, _ := strconv.Atoi(m[1])
		unit, ok := units[m[2]]
		if !ok {
			return 0, fmt.Errorf("bad unit %q in %q", m[2], s)
		}
		total += time.Duration(n) * unit
		rest = rest[len(m[0]):]
	}
	if s == "" {
		return 0, fmt.Errorf("empty time span")
	}
	return total, nil
}

func TestParseTimespan(t *testing.T) {
	for in, want := range map[string]time.Duration{"45": 45 * time.Second, "45s": 45 * time.Second, "1min 30s": 90 * time.Second, "2m": 2 * time.Minute} {
		if got, err := parseTimespan(in); err != nil || got != want {
			t.Errorf("parseTimespan(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseTimespan("infinity"); err == nil {
		t.Error("infinity accepted")
	}
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, readFile(t, unitPath))
	const svc = "Service"
	if u.sections[svc] == nil {
		t.Fatal("no [Service] section")
	}
	want := func(key, value string) {
		t.Helper()
		if got := u.last(svc, key); got != value {
			t.Errorf("%s=%q, want %q", key, got, value)
		}
	}

	t.Run("stop", func(t *testing.T) {
		// mixed: SIGTERM to redcron only, so that it gives running commands
		// their grace; control-group (the default) would SIGTERM the commands
		// at once.
		want("KillMode", "mixed")
		if s := u.last(svc, "KillSignal"); s != "" && s != "SIGTERM" && s != "TERM" {
			t.Errorf("KillSignal=%s, want SIGTERM", s)
		}
		ts := u.last(svc, "TimeoutStopSec")
		if ts == "" {
			ts = u.last(svc, "TimeoutSec")
		}
		d, err := parseTimespan(ts)
		if err != nil {
			t.Fatalf("TimeoutStopSec: %v (the default, 90s, may do; say it)", err)
		}
		ex := parseJobs(t, exampleJobs, readFile(t, exampleJobs), nil)
		budget := max(stopBudget(ex), scheduler.DefaultShutdownGrace+jobs.DefaultKillGrace)
		if d <= budget {
			t.Errorf("TimeoutStopSec=%s, want more than shutdown_grace + kill_grace = %s", d, budget)
		}
	})

	t.Run("reload", func(t *testing.T) {
		r := u.last(svc, "ExecReload")
		if !strings.Contains(r, "kill") || !strings.Contains(r, "-HUP") || !strings.Contains(r, "$MAINPID") {
			t.Errorf("ExecReload=%q, want /bin/kill -HUP $MAINPID", r)
		}
	})

	t.Run("restart", func(t *testing.T) {
		want("Restart", "on-failure")
	})

	t.Run("run", func(t *testing.T) {
		start := strings.Fields(u.last(svc, "ExecStart"))
		if len(start) < 2 || path.Base(start[0]) != "redcron" || start[1] != "run" {
			t.Fatalf("ExecStart=%q, want redcron run ...", start)
		}
		if _, ok := flagValue(start, "config"); !ok {
			t.Error("ExecStart has no --config")
		}
		addr, ok := flagValue(start, "http")
		if !ok {
			t.Fatal("ExecStart has no explicit --http")
		}
		if host, _, err := net.SplitHostPort(addr); addr != "off" && (err != nil || host != "127.0.0.1") {
			t.Errorf("--http %s: bind 127.0.0.1 (the read API has no authentication)", addr)
		}
	})

	t.Run("hardening", func(t *testing.T) {
		want("NoNewPrivileges", "yes")
		want("ProtectSystem", "strict")
		want("ProtectHome", "yes")
		want("PrivateTmp", "yes")
		if u.last(svc, "DynamicUser") != "yes" {
			if user := u.last(svc, "User"); user == "" || user == "root" || user == "0" {
				t.Errorf("neither DynamicUser=yes nor a dedicated User= (got %q)", user)
			}
		}
		if v := u.get(svc, "CapabilityBoundingSet"); len(v) != 1 || v[0] != "" {
			t.Errorf("CapabilityBoundingSet=%q, want empty (no capabilities)", v)
		}
		guided := len(u.get(svc, "ReadWritePaths")) > 0
		for _, c := range u.comments {
			guided = guided || strings.Contains(c, "ReadWritePaths=")
		}
		if !guided {
			t.Error("no ReadWritePaths= guidance for jobs that write files under ProtectSystem=strict")
		}
	})

	t.Run("secrets", func(t *testing.T) {
		ef := u.last(svc, "EnvironmentFile")
		if ef == "" {
			t.Fatal("no EnvironmentFile for REDCRON_HTTP_TOKEN and the Redis URL")
		}
		mentioned := false
		for _, c := range u.comments {
			if strings.Contains(c, strings.TrimPrefix(ef, "-")) && (strings.Contains(c, "600") || strings.Contains(c, "0600")) {
				mentioned = true
			}
		}
		if !mentioned {
			t.Errorf("no comment says %s must be mode 600", ef)
		}
		for _, e := range u.get(svc, "Environment") {
			if secretName.MatchString(e) {
				t.Errorf("Environment=%s: secrets belong in the EnvironmentFile (mode 600), not the unit (world-readable)", e)
			}
		}
		if strings.Contains(u.last(svc, "ExecStart"), "@") {
			t.Error("ExecStart carries credentials (a URL with userinfo?): the command line is visible to every user")
		}
	})

	t.Run("install", func(t *testing.T) {
		if len(u.get("Install", "WantedBy")) == 0 {
			t.Error("no [Install] WantedBy=")
		}
	})
}

// ---------------------------------------------------------------------------
// Dockerfile

type instruction struct {
	cmd  string // upper case: RUN, COPY, USER...
	args string
	line int
}

type stage struct {
	name, base string
	instrs     []instruction
	comments   []string
}

type dockerfile struct {
	stages   []*stage
	comments []string // before the first FROM
}

func (d *dockerfile) stage(name string) *stage {
	for _, s := range d.stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, i := range s.instrs {
		if i.cmd == cmd {
			out = append(out, i)
		}
	}
	return out
}

func (s *stage) lastArgs(cmd string) string {
	is := s.all(cmd)
	if len(is) == 0 {
		return ""
	}
	return is[len(is)-1].args
}

// hasShell reports whether the stage's base image has a shell to exec
// (Debian, Ubuntu, Alpine, BusyBox...), unlike distroless and scratch.
func (s *stage) hasShell() bool {
	b := strings.ToLower(s.base)
	if strings.Contains(b, "distroless") || b == "scratch" {
		return false
	}
	for _, ok := range []string{"debian", "ubuntu", "alpine", "busybox", "bookworm", "trixie", "ubi"} {
		if strings.Contains(b, ok) {
			return true
		}
	}
	return false
}

// installs reports whether a RUN of the stage installs pkg (apt or apk).
func (s *stage) installs(pkg string) bool {
	re := regexp.MustCompile(`(apt-get|apt|apk|microdnf|dnf)\s+(install|add)\b[^&;|]*\s` + regexp.QuoteMeta(pkg) + `(\s|$)`)
	for _, r := range s.all("RUN") {
		if re.MatchString(r.args) {
			return true
		}
	}
	return false
}

// provides reports whether the stage's image has the program prog.
func (s *stage) provides(prog string) bool {
	base := path.Base(prog)
	if base == "redcron" {
		return true
	}
	return s.hasShell() && (s.installs(base) || base == "sh")
}

// user is the stage's last USER.
func (s *stage) user() string { return s.lastArgs("USER") }

func isRootUser(u string) bool {
	name, _, _ := strings.Cut(u, ":")
	return name == "" || name == "root" || name == "0"
}

// execForm decodes an exec-form (JSON array) argument.
func execForm(args string) ([]string, bool) {
	var l []string
	if err := json.Unmarshal([]byte(args), &l); err != nil {
		return nil, false
	}
	return l, true
}

var fromRE = regexp.MustCompile(`(?i)^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$`)

// parseDockerfile reads instructions (with '\' continuations), the comments
// of each stage, and FROM image [AS name] stages.
func parseDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	df := &dockerfile{}
	var cur *stage
	lines := strings.Split(string(readFile(t, dockerfilePath)), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		start := i + 1
		if strings.HasPrefix(line, "#") {
			if cur == nil {
				df.comments = append(df.comments, line)
			} else {
				cur.comments = append(cur.comments, line)
			}
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				continue // comments inside a continuation are dropped
			}
			line = strings.TrimSuffix(line, `\`) + " " + next
		}
		if line == "" {
			continue
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			m := fromRE.FindStringSubmatch(in.args)
			if m == nil {
				t.Fatalf("%s:%d: FROM %q", dockerfilePath, start, in.args)
			}
			cur = &stage{base: m[1], name: m[2]}
			df.stages = append(df.stages, cur)
			continue
		}
		if cur == nil {
			if in.cmd != "ARG" {
				t.Fatalf("%s:%d: %s before the first FROM", dockerfilePath, start, in.cmd)
			}
			continue
		}
		cur.instrs = append(cur.instrs, in)
	}
	return df
}

func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	header := strings.Join(df.comments, "\n")

	// The build stage.
	var build *stage
	for _, s := range df.stages {
		for _, r := range s.all("RUN") {
			if strings.Contains(r.args, "go build") {
				build = s
				t.Run("build", func(t *testing.T) {
					if !regexp.MustCompile(`-tags[ =]\S*\btimetzdata\b`).MatchString(r.args) {
						t.Error("go build without -tags timetzdata: per-job time zones would need the image's zoneinfo")
					}
					if !strings.Contains(r.args, "CGO_ENABLED=0") {
						t.Error("go build without CGO_ENABLED=0: the binary would not run on distroless/static")
					}
					if !strings.Contains(r.args, "./cmd/redcron") {
						t.Error("go build does not build ./cmd/redcron")
					}
				})
			}
		}
	}
	if build == nil || build.name == "" {
		t.Fatal("no named stage runs go build")
	}

	var static, runtime *stage
	for _, s := range df.stages {
		if s == build {
			continue
		}
		if strings.Contains(s.base, "distroless/static") {
			static = s
		} else if s.hasShell() {
			runtime = s
		}
	}
	if static == nil || runtime == nil {
		t.Fatalf("want a distroless/static stage (Go-function jobs) and a stage with a shell (command jobs); stages: %v", func() []string {
			var n []string
			for _, s := range df.stages {
				n = append(n, s.name+"="+s.base)
			}
			return n
		}())
	}
	if last := df.stages[len(df.stages)-1]; last != runtime {
		t.Errorf("the last stage (what `docker build` builds without --target) is %q; the header says runtime", last.name)
	}

	for _, s := range []*stage{static, runtime} {
		t.Run(s.name, func(t *testing.T) {
			if s.name == "" {
				t.Fatal("unnamed stage: `docker build --target` needs a name")
			}
			if !strings.Contains(header, "--target "+s.name) {
				t.Errorf("the header does not say how to build it (docker build --target %s)", s.name)
			}
			if u := s.user(); isRootUser(u) {
				t.Errorf("USER %q: run as non-root", u)
			} else if name, _, _ := strings.Cut(u, ":"); !regexp.MustCompile(`^\d+$`).MatchString(name) {
				t.Errorf("USER %q: numeric, so that Kubernetes' runAsNonRoot can check it", u)
			}
			if !slices.ContainsFunc(s.all("COPY"), func(i instruction) bool {
				return strings.Contains(i.args, "--from="+build.name) && strings.Contains(i.args, "redcron")
			}) {
				t.Error("does not copy the redcron binary from the build stage")
			}
			if !slices.ContainsFunc(s.all("EXPOSE"), func(i instruction) bool { return strings.Fields(i.args)[0] == strconv.Itoa(statusPort) }) {
				t.Errorf("no EXPOSE %d", statusPort)
			}
			ep, ok := execForm(s.lastArgs("ENTRYPOINT"))
			if !ok || len(ep) == 0 || path.Base(ep[len(ep)-1]) != "redcron" {
				t.Errorf("ENTRYPOINT %q: exec form ending in redcron, so that SIGTERM reaches it", s.lastArgs("ENTRYPOINT"))
			}
			cmd, ok := execForm(s.lastArgs("CMD"))
			if !ok || len(cmd) == 0 || cmd[0] != "run" {
				t.Fatalf("CMD %q: want exec form [\"run\", ...]", s.lastArgs("CMD"))
			}
			if addr, _ := flagValue(cmd, "http"); addr != fmt.Sprintf("0.0.0.0:%d", statusPort) {
				t.Errorf("CMD --http %q, want 0.0.0.0:%d (the default binds loopback: unreachable from outside the container)", addr, statusPort)
			}
		})
	}

	t.Run("no secrets", func(t *testing.T) {
		// ENV and ARG values stay in the image's config or history, also
		// those of the build stage (its cache and a --target build).
		for _, s := range df.stages {
			for _, e := range append(s.all("ENV"), s.all("ARG")...) {
				if secretName.MatchString(e.args) {
					t.Errorf("%s:%d: %s %s: secrets stay out of images; pass them at run time", dockerfilePath, e.line, e.cmd, e.args)
				}
			}
		}
	})

	t.Run("static health", func(t *testing.T) {
		hc := static.lastArgs("HEALTHCHECK")
		if hc != "" && hc != "NONE" {
			cmd, ok := execForm(strings.TrimSpace(hc[strings.Index(hc, "CMD")+3:]))
			if !ok || !static.provides(cmd[0]) {
				t.Errorf("HEALTHCHECK %q: the static image has no shell, curl or wget", hc)
			}
			return
		}
		why := strings.Join(static.comments, "\n")
		if !strings.Contains(why, "HEALTHCHECK") || !strings.Contains(why, "/healthz") {
			t.Error("no HEALTHCHECK and no comment saying why and what probes /healthz instead")
		}
	})

	t.Run("runtime packages and health", func(t *testing.T) {
		if !runtime.installs("ca-certificates") {
			t.Error("does not install ca-certificates (HTTPS from command jobs and rediss://)")
		}
		hc := runtime.lastArgs("HEALTHCHECK")
		i := strings.Index(hc, "CMD ")
		if i < 0 {
			t.Fatalf("HEALTHCHECK %q: want one", hc)
		}
		cmd, ok := execForm(strings.TrimSpace(hc[i+4:]))
		if !ok {
			t.Fatalf("HEALTHCHECK %q: use the exec form", hc)
		}
		if !runtime.provides(cmd[0]) {
			t.Errorf("HEALTHCHECK runs %q, which the stage does not install", cmd[0])
		}
		if !strings.Contains(strings.Join(cmd, " "), fmt.Sprintf("127.0.0.1:%d/healthz", statusPort)) {
			t.Errorf("HEALTHCHECK %q does not probe /healthz on %d", cmd, statusPort)
		}
	})
}

// ---------------------------------------------------------------------------
// .dockerignore

type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

type dockerIgnore []ignoreRule

// readDockerignore compiles the repository's .dockerignore with the rules
// Docker uses: patterns relative to the context root, '*' and '?' within a
// path element, '**' across elements, '!' exceptions, the last match wins,
// and a pattern that matches a directory excludes what is under it.
func readDockerignore(t *testing.T) dockerIgnore {
	t.Helper()
	var rules dockerIgnore
	for _, l := range strings.Split(string(readFile(t, dockerignore)), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		r := ignoreRule{}
		if p, ok := strings.CutPrefix(l, "!"); ok {
			r.negate, l = true, p
		}
		l = strings.Trim(path.Clean("/"+l), "/")
		var b strings.Builder
		for i := 0; i < len(l); i++ {
			switch {
			case strings.HasPrefix(l[i:], "**/"):
				b.WriteString(`(.*/)?`)
				i += 2
			case strings.HasPrefix(l[i:], "**"):
				b.WriteString(`.*`)
				i++
			case l[i] == '*':
				b.WriteString(`[^/]*`)
			case l[i] == '?':
				b.WriteString(`[^/]`)
			default:
				b.WriteString(regexp.QuoteMeta(l[i : i+1]))
			}
		}
		r.re = regexp.MustCompile(`^` + b.String() + `(/.*)?$`)
		rules = append(rules, r)
	}
	return rules
}

func (d dockerIgnore) excluded(p string) bool {
	ex := false
	for _, r := range d {
		if r.re.MatchString(p) {
			ex = !r.negate
		}
	}
	return ex
}

func TestDockerignore(t *testing.T) {
	ign := readDockerignore(t)
	for _, p := range []string{".git/HEAD", "bench/results/x.txt", "cmd/redcron/redcron", "jobs/jobs.test", "cover.out", "deploy/redcron.env", "redcron"} {
		if !ign.excluded(p) {
			t.Errorf("%s is sent to the build context", p)
		}
	}
	// What the Dockerfile's build stage needs.
	for _, p := range []string{"go.mod", "go.sum", "jobs.yaml", "cmd/redcron/main.go", "jobs/decode.go", "locker/obtain.lua", "scheduler/statusapi/page.html", "internal/embedredis/embedredis.go"} {
		if ign.excluded(p) {
			t.Errorf("%s is excluded from the build context, but the image needs it", p)
		}
	}
}
