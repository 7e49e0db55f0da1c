package install

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes"
)

// printResult writes what happened: by default one "kind/name change"
// line per object as kubectl does; -o yaml|json the objects as a List.
// Secrets never reach the output, whatever the format: they hold keys.
func printResult(s genericiooptions.IOStreams, output string, dry DryRun, res *Result) error {
	suffix := ""
	switch dry {
	case DryRunClient:
		suffix = " (dry run)"
	case DryRunServer:
		suffix = " (server dry run)"
	}
	var hidden []string
	switch output {
	case "yaml", "json":
		items := []any{}
		for _, a := range res.Objects {
			if a.Change == Deleted || a.Change == Kept {
				continue
			}
			if a.Object.GetKind() == "Secret" {
				hidden = append(hidden, a.Ref())
				continue
			}
			o := a.Object.DeepCopy()
			unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
			items = append(items, o.Object)
		}
		hidden = append(hidden, res.Hidden...)
		list := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "List", "metadata": map[string]any{}, "items": items}}
		var p printers.ResourcePrinter = &printers.YAMLPrinter{}
		if output == "json" {
			p = &printers.JSONPrinter{}
		}
		if err := p.PrintObj(list, s.Out); err != nil {
			return err
		}
	default:
		for _, a := range res.Objects {
			line := a.Ref()
			if output != "name" {
				line += " " + a.Change + suffix
				if a.Why != "" {
					line += " (" + a.Why + ")"
				}
			}
			if _, err := fmt.Fprintln(s.Out, line); err != nil {
				return err
			}
		}
		for _, h := range res.Hidden {
			line := h
			if output != "name" {
				line += " created (dry run; its keys are made by a real install)"
			}
			if _, err := fmt.Fprintln(s.Out, line); err != nil {
				return err
			}
		}
	}
	if len(hidden) > 0 {
		fmt.Fprintf(s.ErrOut, "not shown, they hold private keys: %s\n", strings.Join(hidden, ", "))
	}
	for _, n := range res.Notes {
		fmt.Fprintf(s.ErrOut, "note: %s\n", n)
	}
	return nil
}

// waitAvailable waits until the Deployment's current generation has all
// its replicas available.
func waitAvailable(ctx context.Context, kube kubernetes.Interface, ns, name string, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			last = "not found"
			return false, nil
		}
		if err != nil {
			return false, err
		}
		last = deploymentState(d)
		return last == "", nil
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s is not available after %s: %s", ns, name, timeout, last)
	}
	return nil
}

// deploymentState is "" for an available Deployment, else why not.
func deploymentState(d *appsv1.Deployment) string {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch {
	case d.Status.ObservedGeneration < d.Generation:
		return "its new settings are not rolled out yet"
	case d.Status.UpdatedReplicas < want:
		return fmt.Sprintf("%d of %d pods updated", d.Status.UpdatedReplicas, want)
	case d.Status.AvailableReplicas < want:
		return fmt.Sprintf("%d of %d pods available", d.Status.AvailableReplicas, want)
	}
	return ""
}
