package agent

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"qonnect.io/qonnect/internal/fleet"
)

func ptr[T any](v T) *T { return &v }

func TestObjectHealth(t *testing.T) {
	dep := func(gen, observed int64, want int32, st appsv1.DeploymentStatus) *appsv1.Deployment {
		st.ObservedGeneration = observed
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: gen},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr(want)},
			Status:     st,
		}
	}
	tests := []struct {
		name    string
		obj     runtime.Object
		phase   fleet.Phase
		ready   int32
		desired int32
		msg     string
	}{
		{"deployment available", dep(2, 2, 3, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}),
			fleet.PhaseHealthy, 3, 3, ""},
		{"deployment not observed", dep(3, 2, 3, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}),
			fleet.PhaseProgressing, 3, 3, "waiting for the controller"},
		{"deployment rolling", dep(2, 2, 3, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}),
			fleet.PhaseProgressing, 3, 3, "1 old replicas pending termination"},
		{"deployment unavailable", dep(1, 1, 2, appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1, AvailableReplicas: 1}),
			fleet.PhaseProgressing, 1, 2, "1 of 2 replicas available"},
		{"deployment deadline exceeded", dep(1, 1, 2, appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{{
			Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "web-1" has timed out progressing.`}}}),
			fleet.PhaseFailed, 0, 2, "timed out progressing"},
		{"deployment quota", dep(1, 1, 2, appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{{
			Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "exceeded quota"}}}),
			fleet.PhaseFailed, 0, 2, "FailedCreate: exceeded quota"},
		{"deployment of nil replicas means one", &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d"}},
			fleet.PhaseProgressing, 0, 1, "0 of 1 replicas updated"},
		{"statefulset ready", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: ptr[int32](2)},
			Status: appsv1.StatefulSetStatus{ReadyReplicas: 2, UpdatedReplicas: 2, CurrentRevision: "a", UpdateRevision: "a"}},
			fleet.PhaseHealthy, 2, 2, ""},
		{"statefulset not ready", &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr[int32](2)},
			Status: appsv1.StatefulSetStatus{ReadyReplicas: 1}},
			fleet.PhaseProgressing, 1, 2, "StatefulSet/db: 1 of 2 replicas ready"},
		{"job complete", &batchv1.Job{Spec: batchv1.JobSpec{Completions: ptr[int32](2)},
			Status: batchv1.JobStatus{Succeeded: 2, Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}},
			fleet.PhaseHealthy, 2, 2, ""},
		{"job failed", &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "once"},
			Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}}}},
			fleet.PhaseFailed, 0, 1, "Job/once failed: BackoffLimitExceeded"},
		{"job running", &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "once"}, Status: batchv1.JobStatus{Active: 1}},
			fleet.PhaseProgressing, 0, 1, "0 of 1 completions"},
		{"pod ready", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}},
			fleet.PhaseHealthy, 1, 1, ""},
		{"pod pending", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending}},
			fleet.PhaseProgressing, 0, 1, "Pod/p is pending"},
		{"config map", &corev1.ConfigMap{}, fleet.PhaseHealthy, 0, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := objectHealth(tc.obj)
			if h.Phase != tc.phase || h.Ready != tc.ready || h.Desired != tc.desired || !strings.Contains(h.Message, tc.msg) {
				t.Errorf("got %+v, want phase %s ready %d/%d message containing %q", h, tc.phase, tc.ready, tc.desired, tc.msg)
			}
		})
	}
}

func TestCombine(t *testing.T) {
	h := combine([]health{
		{Phase: fleet.PhaseHealthy, Ready: 2, Desired: 2},
		{Phase: fleet.PhaseProgressing, Message: "slow", Ready: 0, Desired: 1},
		{Phase: fleet.PhaseFailed, Message: "broken", Ready: 1, Desired: 3},
		{Phase: fleet.PhaseProgressing, Message: "also slow"},
	})
	if h.Phase != fleet.PhaseFailed || h.Message != "broken" || h.Ready != 3 || h.Desired != 6 {
		t.Errorf("got %+v", h)
	}
	if h := combine(nil); h.Phase != fleet.PhaseHealthy {
		t.Errorf("no objects: %+v", h)
	}
}

func TestPodProblem(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	waiting := func(name, reason, msg string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{
			Phase: corev1.PodPending,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}},
		}}
	}
	unsched := func(name string, since time.Duration) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{
			Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
				Message: "0/3 nodes are available: 3 Insufficient cpu.", LastTransitionTime: metav1.NewTime(now.Add(-since))}},
		}}
	}
	tests := []struct {
		name  string
		pods  []*corev1.Pod
		ok    bool
		phase fleet.Phase
		msg   string
	}{
		{"no pods", nil, false, "", ""},
		{"creating", []*corev1.Pod{waiting("a", "ContainerCreating", "")}, false, "", ""},
		{"image pull", []*corev1.Pod{waiting("a", "ErrImagePull", `pull "nope:1": not found`)}, true, fleet.PhaseFailed,
			`pod a: container app: ErrImagePull: pull "nope:1": not found`},
		{"back-off", []*corev1.Pod{waiting("b", "ImagePullBackOff", "Back-off pulling image")}, true, fleet.PhaseFailed, "ImagePullBackOff"},
		{"unschedulable, just now", []*corev1.Pod{unsched("a", 5*time.Second)}, true, fleet.PhaseProgressing, "pod a unschedulable: 0/3 nodes are available: 3 Insufficient cpu."},
		{"unschedulable, long", []*corev1.Pod{unsched("a", 2*time.Minute)}, true, fleet.PhaseFailed, "Insufficient cpu"},
		{"image error wins over unschedulable", []*corev1.Pod{unsched("a", 2*time.Minute), waiting("b", "InvalidImageName", "")}, true, fleet.PhaseFailed, "InvalidImageName"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			phase, msg, ok := podProblem(tc.pods, now)
			if ok != tc.ok || phase != tc.phase || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %v %q %v, want %v %q %v", phase, msg, ok, tc.phase, tc.msg, tc.ok)
			}
		})
	}
}
