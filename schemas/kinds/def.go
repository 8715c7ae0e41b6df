package kinds

import (
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Def is one kind's declaration with its typed rules: S is the stored
// pointer type (*schemas.Pod), K the wire pointer type (*corev1.Pod).
// Typed callers (controller, scheduler, kubelet) call its func fields
// directly; the generic layers use it through Kind.
type Def[S any, K runtime.Object] struct {
	Meta Info
	// New and NewK return empty objects; NewList an empty wire list.
	New     func() S
	NewK    func() K
	NewList func() runtime.Object
	// To converts stored to wire, status included; From refuses with a
	// field error every wire field MiniKu does not keep.
	To   func(S) (K, error)
	From func(K) (S, field.ErrorList)
	// Create and Update are the strategy's PrepareForCreate and
	// PrepareForUpdate; nil means nothing to prepare.
	Create func(obj S, now time.Time)
	Update func(obj, old S)
	// Check and CheckUpdate are Validate and ValidateUpdate; CheckUpdate
	// nil means only Check.
	Check       func(S) field.ErrorList
	CheckUpdate func(obj, old S) field.ErrorList
	// Status is the status strategy's PrepareForUpdate: obj keeps only
	// its status, everything else is old's (as Kubernetes' status
	// strategies reset spec changes); CheckStatus is its validation. nil
	// Status means the kind has no status subresource.
	Status      func(obj, old S)
	CheckStatus func(obj, old S) field.ErrorList
	// Columns are the table's columns; Row gives one object's cells,
	// those that change as time passes as Ago.
	Columns []metav1.TableColumnDefinition
	Row     func(obj K) []any
}

var _ Kind = (*Def[any, runtime.Object])(nil)

func (d *Def[S, K]) Info() *Info                 { return &d.Meta }
func (d *Def[S, K]) NewStored() any              { return d.New() }
func (d *Def[S, K]) NewKube() runtime.Object     { return d.NewK() }
func (d *Def[S, K]) NewKubeList() runtime.Object { return d.NewList() }

// stored asserts a stored object; a wrong type is a programming error of
// the generic layer, reported where the interface lets it be.
func (d *Def[S, K]) stored(obj any) (S, error) {
	s, ok := obj.(S)
	if !ok {
		var zero S
		return zero, fmt.Errorf("kinds: %s: stored object is %T, want %T", d.Meta.Resource, obj, zero)
	}
	return s, nil
}

func (d *Def[S, K]) mustStored(obj any) S {
	s, err := d.stored(obj)
	if err != nil {
		panic(err)
	}
	return s
}

func (d *Def[S, K]) ToKube(obj any) (runtime.Object, error) {
	s, err := d.stored(obj)
	if err != nil {
		return nil, err
	}
	return d.To(s)
}

func (d *Def[S, K]) FromKube(obj runtime.Object) (any, field.ErrorList) {
	k, ok := obj.(K)
	if !ok {
		var zero K
		return nil, field.ErrorList{field.TypeInvalid(field.NewPath("kind"), fmt.Sprintf("%T", obj), fmt.Sprintf("want %T", zero))}
	}
	return d.From(k)
}

func (d *Def[S, K]) PrepareForCreate(obj any, now time.Time) {
	if d.Create != nil {
		d.Create(d.mustStored(obj), now)
	}
}

func (d *Def[S, K]) PrepareForUpdate(obj, old any) {
	if d.Update != nil {
		d.Update(d.mustStored(obj), d.mustStored(old))
	}
}

func (d *Def[S, K]) Validate(obj any) field.ErrorList {
	s, err := d.stored(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	if d.Check == nil {
		return nil
	}
	return d.Check(s)
}

func (d *Def[S, K]) ValidateUpdate(obj, old any) field.ErrorList {
	s, err := d.stored(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	o, err := d.stored(old)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	if d.CheckUpdate == nil {
		return d.Validate(s)
	}
	return d.CheckUpdate(s, o)
}

func (d *Def[S, K]) PrepareForStatusUpdate(obj, old any) {
	if d.Status != nil {
		d.Status(d.mustStored(obj), d.mustStored(old))
	}
}

func (d *Def[S, K]) ValidateStatusUpdate(obj, old any) field.ErrorList {
	s, err := d.stored(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	o, err := d.stored(old)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	if d.CheckStatus == nil {
		return d.ValidateUpdate(s, o)
	}
	return d.CheckStatus(s, o)
}

func (d *Def[S, K]) Table(objs []runtime.Object, now time.Time) (*metav1.Table, error) {
	// A copy: callers may trim or reorder the columns of their table.
	t := &metav1.Table{ColumnDefinitions: slices.Clone(d.Columns), Rows: make([]metav1.TableRow, 0, len(objs))}
	for _, o := range objs {
		k, ok := o.(K)
		if !ok {
			var zero K
			return nil, fmt.Errorf("kinds: %s table: object is %T, want %T", d.Meta.Resource, o, zero)
		}
		cells := d.Row(k)
		for i, c := range cells {
			if a, ok := c.(Ago); ok {
				cells[i] = a.At(now)
			}
		}
		t.Rows = append(t.Rows, metav1.TableRow{Cells: cells, Object: runtime.RawExtension{Object: k}})
	}
	return t, nil
}

func (d *Def[S, K]) Cells(obj runtime.Object) ([]any, error) {
	k, ok := obj.(K)
	if !ok {
		var zero K
		return nil, fmt.Errorf("kinds: %s row: object is %T, want %T", d.Meta.Resource, obj, zero)
	}
	return d.Row(k), nil
}
