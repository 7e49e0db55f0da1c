package agent

import (
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"qonnect.io/qonnect/internal/fleet"
)

// unschedulableGrace is how long a pod may stay unschedulable before its
// component is reported Failed rather than Progressing: the scheduler
// reports Unschedulable for a moment while room is being made (a
// rolling update, a pod being deleted), and the lead moves a Failed
// component elsewhere, which is worth doing only when it will not fit.
const unschedulableGrace = time.Minute

// fatalWaitingReasons are container waiting reasons that will not clear
// by themselves: the manifest or the image has to change.
var fatalWaitingReasons = []string{
	"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
	"CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff", "RunContainerError",
}

// health is the state of one object or of a whole component.
type health struct {
	Phase   fleet.Phase
	Message string
	Ready   int32
	Desired int32
}

// severity orders phases so that a component is as bad as its worst object.
func severity(p fleet.Phase) int {
	switch p {
	case fleet.PhaseFailed:
		return 4
	case fleet.PhasePending:
		return 3
	case fleet.PhaseProgressing:
		return 2
	case fleet.PhaseRemoving:
		return 1
	}
	return 0
}

// combine folds the health of a component's objects: replica counts add
// up, the worst phase wins and brings its message.
func combine(hs []health) health {
	out := health{Phase: fleet.PhaseHealthy}
	for _, h := range hs {
		out.Ready += h.Ready
		out.Desired += h.Desired
		if severity(h.Phase) > severity(out.Phase) {
			out.Phase, out.Message = h.Phase, h.Message
		}
	}
	return out
}

// objectHealth is the health of one object the agent applied, from its
// current state in the cluster. Kinds that run nothing are healthy once
// they exist.
func objectHealth(obj runtime.Object) health {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return deploymentHealth(o)
	case *appsv1.StatefulSet:
		return statefulSetHealth(o)
	case *appsv1.DaemonSet:
		return daemonSetHealth(o)
	case *appsv1.ReplicaSet:
		return replicaSetHealth(o)
	case *batchv1.Job:
		return jobHealth(o)
	case *corev1.Pod:
		return podHealth(o)
	}
	return health{Phase: fleet.PhaseHealthy}
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// deploymentHealth follows `kubectl rollout status`: the controller has
// seen the latest spec, every replica is updated, old ones are gone and
// the updated ones are available.
func deploymentHealth(d *appsv1.Deployment) health {
	want := replicas(d.Spec.Replicas)
	st := d.Status
	h := health{Phase: fleet.PhaseProgressing, Ready: st.ReadyReplicas, Desired: want}
	ref := "Deployment/" + d.Name
	for _, c := range st.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			h.Phase, h.Message = fleet.PhaseFailed, fmt.Sprintf("%s: %s", ref, c.Message)
			return h
		}
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			h.Phase, h.Message = fleet.PhaseFailed, fmt.Sprintf("%s: %s: %s", ref, c.Reason, c.Message)
			return h
		}
	}
	switch {
	case d.Generation > st.ObservedGeneration:
		h.Message = ref + ": waiting for the controller to see the new spec"
	case st.UpdatedReplicas < want:
		h.Message = fmt.Sprintf("%s: %d of %d replicas updated", ref, st.UpdatedReplicas, want)
	case st.Replicas > st.UpdatedReplicas:
		h.Message = fmt.Sprintf("%s: %d old replicas pending termination", ref, st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas || st.AvailableReplicas < want:
		h.Message = fmt.Sprintf("%s: %d of %d replicas available", ref, st.AvailableReplicas, want)
	default:
		h.Phase = fleet.PhaseHealthy
	}
	return h
}

func statefulSetHealth(s *appsv1.StatefulSet) health {
	want := replicas(s.Spec.Replicas)
	st := s.Status
	h := health{Phase: fleet.PhaseProgressing, Ready: st.ReadyReplicas, Desired: want}
	ref := "StatefulSet/" + s.Name
	rolling := s.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType
	switch {
	case s.Generation > st.ObservedGeneration:
		h.Message = ref + ": waiting for the controller to see the new spec"
	case st.ReadyReplicas < want:
		h.Message = fmt.Sprintf("%s: %d of %d replicas ready", ref, st.ReadyReplicas, want)
	case rolling && st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision && st.UpdatedReplicas < want:
		h.Message = fmt.Sprintf("%s: %d of %d replicas updated", ref, st.UpdatedReplicas, want)
	default:
		h.Phase = fleet.PhaseHealthy
	}
	return h
}

func daemonSetHealth(d *appsv1.DaemonSet) health {
	st := d.Status
	h := health{Phase: fleet.PhaseProgressing, Ready: st.NumberReady, Desired: st.DesiredNumberScheduled}
	ref := "DaemonSet/" + d.Name
	switch {
	case d.Generation > st.ObservedGeneration:
		h.Message = ref + ": waiting for the controller to see the new spec"
	case st.UpdatedNumberScheduled < st.DesiredNumberScheduled:
		h.Message = fmt.Sprintf("%s: %d of %d pods updated", ref, st.UpdatedNumberScheduled, st.DesiredNumberScheduled)
	case st.NumberAvailable < st.DesiredNumberScheduled:
		h.Message = fmt.Sprintf("%s: %d of %d pods available", ref, st.NumberAvailable, st.DesiredNumberScheduled)
	default:
		h.Phase = fleet.PhaseHealthy
	}
	return h
}

func replicaSetHealth(r *appsv1.ReplicaSet) health {
	want := replicas(r.Spec.Replicas)
	st := r.Status
	h := health{Phase: fleet.PhaseProgressing, Ready: st.ReadyReplicas, Desired: want}
	ref := "ReplicaSet/" + r.Name
	for _, c := range st.Conditions {
		if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
			h.Phase, h.Message = fleet.PhaseFailed, fmt.Sprintf("%s: %s: %s", ref, c.Reason, c.Message)
			return h
		}
	}
	switch {
	case r.Generation > st.ObservedGeneration:
		h.Message = ref + ": waiting for the controller to see the new spec"
	case st.AvailableReplicas < want:
		h.Message = fmt.Sprintf("%s: %d of %d replicas available", ref, st.AvailableReplicas, want)
	default:
		h.Phase = fleet.PhaseHealthy
	}
	return h
}

// jobHealth: a Job is healthy once complete; its replica counts are
// completions.
func jobHealth(j *batchv1.Job) health {
	want := int32(1)
	if j.Spec.Completions != nil {
		want = *j.Spec.Completions
	}
	h := health{Phase: fleet.PhaseProgressing, Ready: j.Status.Succeeded, Desired: want}
	ref := "Job/" + j.Name
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			h.Phase = fleet.PhaseHealthy
			return h
		case batchv1.JobFailed:
			h.Phase, h.Message = fleet.PhaseFailed, fmt.Sprintf("%s failed: %s: %s", ref, c.Reason, c.Message)
			return h
		}
	}
	if j.Spec.Suspend != nil && *j.Spec.Suspend {
		h.Message = ref + " is suspended"
		return h
	}
	h.Message = fmt.Sprintf("%s: %d of %d completions", ref, j.Status.Succeeded, want)
	return h
}

// podHealth is for a Pod applied as such: running and ready, or done.
func podHealth(p *corev1.Pod) health {
	h := health{Phase: fleet.PhaseProgressing, Desired: 1}
	ref := "Pod/" + p.Name
	switch p.Status.Phase {
	case corev1.PodSucceeded:
		h.Phase, h.Ready = fleet.PhaseHealthy, 1
	case corev1.PodFailed:
		h.Phase, h.Message = fleet.PhaseFailed, strings.TrimSpace(fmt.Sprintf("%s failed: %s %s", ref, p.Status.Reason, p.Status.Message))
	case corev1.PodRunning:
		if podReady(p) {
			h.Phase, h.Ready = fleet.PhaseHealthy, 1
		} else {
			h.Message = ref + " is running, not ready"
		}
	default:
		h.Message = ref + " is " + strings.ToLower(string(p.Status.Phase))
	}
	return h
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podProblem looks through a component's pods for why it is not
// available: a container that cannot start (Failed: it will not get
// better by waiting) or a pod the scheduler cannot place (Progressing, then
// Failed once it has lasted unschedulableGrace). ok is false when no pod
// shows a problem. Pods are looked at in name order so the answer is
// stable between reports.
func podProblem(pods []*corev1.Pod, now time.Time) (phase fleet.Phase, msg string, ok bool) {
	sorted := slices.Clone(pods)
	slices.SortFunc(sorted, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	var unsched string
	var unschedSince time.Time
	for _, p := range sorted {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		statuses := append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...)
		for _, cs := range statuses {
			if w := cs.State.Waiting; w != nil && slices.Contains(fatalWaitingReasons, w.Reason) {
				m := fmt.Sprintf("pod %s: container %s: %s", p.Name, cs.Name, w.Reason)
				if w.Message != "" {
					m += ": " + w.Message
				}
				return fleet.PhaseFailed, m, true
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && unsched == "" {
				unsched = fmt.Sprintf("pod %s unschedulable: %s", p.Name, c.Message)
				unschedSince = c.LastTransitionTime.Time
			}
		}
	}
	if unsched == "" {
		return "", "", false
	}
	if !unschedSince.IsZero() && now.Sub(unschedSince) >= unschedulableGrace {
		return fleet.PhaseFailed, unsched, true
	}
	return fleet.PhaseProgressing, unsched, true
}
