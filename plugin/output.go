package plugin

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
)

// OutputFlags are -o and its companions, for commands that print objects.
type OutputFlags struct {
	PrintFlags *genericclioptions.PrintFlags
	NoHeaders  bool
	// tableOK is false for commands whose default output is not a table.
	tableOK bool
}

// NewOutputFlags returns -o with no default (a table, or the command's text).
func NewOutputFlags(tables bool) *OutputFlags {
	return &OutputFlags{PrintFlags: genericclioptions.NewPrintFlags(""), tableOK: tables}
}

// AddFlags binds -o, --template and --no-headers.
func (f *OutputFlags) AddFlags(cmd *cobra.Command) {
	f.PrintFlags.AddFlags(cmd)
	if f.tableOK {
		cmd.Flags().BoolVar(&f.NoHeaders, "no-headers", f.NoHeaders, "When printing a table, print no header row.")
		cmd.Flag("output").Usage = "Output format: wide, " + strings.Join(f.PrintFlags.AllowedFormats(), ", ") + "."
	}
}

// Format is the -o value, lower case.
func (f *OutputFlags) Format() string { return strings.ToLower(*f.PrintFlags.OutputFormat) }

// Human reports whether the output is for people (the default or wide).
func (f *OutputFlags) Human() bool {
	s := f.Format()
	return s == "" || (f.tableOK && s == "wide")
}

// Check fails early, in Complete, on an output format no printer knows.
func (f *OutputFlags) Check() error {
	if f.Human() {
		return nil
	}
	_, err := f.Printer()
	return err
}

// Printer returns the printer for machine-readable output; call it only
// when Human is false. An unknown -o is an error naming the known ones.
func (f *OutputFlags) Printer() (printers.ResourcePrinter, error) {
	p, err := f.PrintFlags.ToPrinter()
	if err != nil {
		if genericclioptions.IsNoCompatiblePrinterError(err) {
			allowed := f.PrintFlags.AllowedFormats()
			if f.tableOK {
				allowed = append([]string{"wide"}, allowed...)
			}
			return nil, fmt.Errorf("unknown output format %q: use one of %s", f.Format(), strings.Join(allowed, ", "))
		}
		return nil, err
	}
	return p, nil
}

// TablePrinter prints metav1.Tables as kubectl does; one printer keeps
// printing rows under the first header, which is what -w needs.
func (f *OutputFlags) TablePrinter() printers.ResourcePrinter {
	return printers.NewTablePrinter(printers.PrintOptions{Wide: f.Format() == "wide", NoHeaders: f.NoHeaders})
}

// column is a table column; wide ones show only with -o wide.
func column(name string, wide bool) metav1.TableColumnDefinition {
	c := metav1.TableColumnDefinition{Name: name, Type: "string"}
	if wide {
		c.Priority = 1
	}
	return c
}

// printTable prints rows under columns.
func printTable(p printers.ResourcePrinter, w io.Writer, cols []metav1.TableColumnDefinition, rows [][]any) error {
	t := &metav1.Table{ColumnDefinitions: cols}
	for _, r := range rows {
		t.Rows = append(t.Rows, metav1.TableRow{Cells: r})
	}
	return p.PrintObj(t, w)
}

// printObjects prints one object alone when single, else a List.
func printObjects(p printers.ResourcePrinter, w io.Writer, objs []*unstructured.Unstructured, single bool) error {
	if single && len(objs) == 1 {
		return p.PrintObj(objs[0], w)
	}
	return p.PrintObj(listOf(objs), w)
}
