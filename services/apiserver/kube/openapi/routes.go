package openapi

import (
	"fmt"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/common"
)

// The routes below are what kube-apiserver's endpoint installer hands to
// kube-openapi's builders, rebuilt from a Resource: same paths, operation
// ids, parameters and x-kubernetes-action / x-kubernetes-group-version-kind
// extensions. kubectl reads the PATCH operation of a kind to decide whether
// the server validates fields itself (its fieldValidation parameter), so
// the paths matter as much as the schemas.

type param struct {
	name, desc, dataType string
	kind                 common.ParameterKind
	required, multiple   bool
}

func (p param) Name() string                 { return p.name }
func (p param) Description() string          { return p.desc }
func (p param) Required() bool               { return p.required }
func (p param) Kind() common.ParameterKind   { return p.kind }
func (p param) DataType() string             { return p.dataType }
func (p param) AllowMultiple() bool          { return p.multiple }
func (p param) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", p.name)), nil }

var _ common.Parameter = param{}

func query(name, dataType, desc string) param {
	return param{name: name, desc: desc, dataType: dataType, kind: common.QueryParameterKind}
}

func pathParam(name, desc string) param {
	return param{name: name, desc: desc, dataType: "string", kind: common.PathParameterKind, required: true}
}

func body(desc string) param {
	return param{name: "body", desc: desc, dataType: "object", kind: common.BodyParameterKind, required: true}
}

var (
	pNamespace = pathParam("namespace", "object name and auth scope, such as for teams and projects")
	pName      = pathParam("name", "name of the resource")
	pPretty    = query("pretty", "string", "If 'true', then the output is pretty printed.")
	pDryRun    = query("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed")
	pManager   = query("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes.")
	pFieldVal  = query("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: - Ignore, - Warn, - Strict: fail the request on unknown or duplicate fields.")
	pForce     = query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.")
	listParams = []param{
		query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
		query("continue", "string", "The continue option should be set when retrieving more results from the server."),
		query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
		query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
		query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
		query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
		query("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
		query("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`: the stream begins with the current objects, then a bookmark annotated \"k8s.io/initial-events-end\"."),
		query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
		query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
	}
	deleteParams = []param{
		query("dryRun", "string", pDryRun.desc),
		query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
		query("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy."),
		query("propagationPolicy", "string", "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'."),
	}
	logParams = []param{
		query("container", "string", "The container for which to stream logs. Defaults to only container if there is one container in the pod."),
		query("follow", "boolean", "Follow the log stream of the pod. Defaults to false."),
		query("limitBytes", "integer", "If set, the number of bytes to read from the server before terminating the log output."),
		query("previous", "boolean", "Return previous terminated container logs. Defaults to false."),
		query("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show logs."),
		query("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
		query("timestamps", "boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output."),
	}
	execParams = []param{
		{name: "command", desc: "Command is the remote command to execute. argv array. Not executed within a shell.", dataType: "string", kind: common.QueryParameterKind, multiple: true},
		query("container", "string", "Container in which to execute the command. Defaults to only container if there is only one container in the pod."),
		query("stderr", "boolean", "Redirect the standard error stream of the pod for this call."),
		query("stdin", "boolean", "Redirect the standard input stream of the pod for this call. Defaults to false."),
		query("stdout", "boolean", "Redirect the standard output stream of the pod for this call."),
		query("tty", "boolean", "TTY if true indicates that a tty will be allocated for the exec call. Defaults to false."),
	}
)

type response struct {
	code  int
	msg   string
	model any
}

func (r response) Code() int       { return r.code }
func (r response) Message() string { return r.msg }
func (r response) Model() any      { return r.model }

type route struct {
	method, path, opID, desc string
	action                   string
	gvk                      *schema.GroupVersionKind
	params                   []param
	consumes, produces       []string
	reqBody                  any
	responses                []response
}

var _ common.Route = (*route)(nil)

func (r *route) Method() string        { return r.method }
func (r *route) Path() string          { return r.path }
func (r *route) OperationName() string { return r.opID }
func (r *route) Description() string   { return r.desc }
func (r *route) Consumes() []string    { return r.consumes }
func (r *route) Produces() []string    { return r.produces }
func (r *route) Parameters() []common.Parameter {
	out := make([]common.Parameter, len(r.params))
	for i, p := range r.params {
		out[i] = p
	}
	return out
}
func (r *route) Metadata() map[string]any {
	m := map[string]any{"x-kubernetes-action": r.action}
	if r.gvk != nil {
		m["x-kubernetes-group-version-kind"] = metav1.GroupVersionKind{Group: r.gvk.Group, Version: r.gvk.Version, Kind: r.gvk.Kind}
	}
	return m
}
func (r *route) RequestPayloadSample() any  { return r.reqBody }
func (r *route) ResponsePayloadSample() any { return nil }
func (r *route) StatusCodeResponses() []common.StatusCodeResponse {
	out := make([]common.StatusCodeResponse, len(r.responses))
	for i, x := range r.responses {
		out[i] = x
	}
	return out
}

// container is the routes of one group version.
type container struct {
	root   string
	routes []*route
}

var _ common.RouteContainer = (*container)(nil)

func (c *container) RootPath() string                   { return c.root }
func (c *container) PathParameters() []common.Parameter { return nil }
func (c *container) Routes() []common.Route {
	out := make([]common.Route, len(c.routes))
	for i, r := range c.routes {
		out[i] = r
	}
	return out
}

var (
	jsonTypes  = []string{"application/json", "application/yaml"}
	patchTypes = []string{
		"application/json-patch+json", "application/merge-patch+json",
		"application/strategic-merge-patch+json", "application/apply-patch+yaml",
	}
	textTypes = []string{"text/plain", "application/json"}
)

// routesFor builds every operation of one resource. fieldValidation adds
// the fieldValidation parameter to writes: kubectl then leaves unknown
// fields to the server; without it kubectl checks them itself against the
// schema (apply --validate=strict).
func routesFor(r Resource, fieldValidation bool) ([]*route, error) {
	gv := r.GVK.GroupVersion()
	gvk := r.GVK
	prefix := "/" + groupPath(gv)
	scope, coll, item := "", prefix+"/"+r.Resource, prefix+"/"+r.Resource+"/{name}"
	var nsParams []param
	if r.Namespaced {
		scope = "Namespaced"
		coll = prefix + "/namespaces/{namespace}/" + r.Resource
		item = coll + "/{name}"
		nsParams = []param{pNamespace}
	}
	op := operationPrefix(gv)
	kind := r.GVK.Kind
	obj := r.Object
	writes := func(extra ...param) []param {
		ps := []param{pPretty, pDryRun, pManager}
		if fieldValidation {
			ps = append(ps, pFieldVal)
		}
		return append(ps, extra...)
	}
	join := func(groups ...[]param) []param {
		var out []param
		for _, g := range groups {
			out = append(out, g...)
		}
		return out
	}
	itemParams := append(append([]param{}, nsParams...), pName)
	objResp := func(codes ...int) []response {
		out := make([]response, len(codes))
		for i, c := range codes {
			out[i] = response{code: c, msg: http.StatusText(c), model: obj}
		}
		return out
	}

	var routes []*route
	add := func(rt *route) {
		rt.gvk = &gvk
		if rt.produces == nil {
			rt.produces = jsonTypes
		}
		routes = append(routes, rt)
	}
	for _, verb := range r.Verbs {
		switch verb {
		case "get":
			add(&route{method: "GET", path: item, opID: "read" + op + scope + kind, action: "get",
				desc: "read the specified " + kind, params: join(itemParams, []param{pPretty}), responses: objResp(200)})
		case "list":
			add(&route{method: "GET", path: coll, opID: "list" + op + scope + kind, action: "list",
				desc: "list or watch objects of kind " + kind, params: join(nsParams, []param{pPretty}, listParams),
				produces:  append(append([]string{}, jsonTypes...), "application/json;stream=watch"),
				responses: []response{{200, "OK", r.List}}})
			if r.Namespaced {
				add(&route{method: "GET", path: prefix + "/" + r.Resource, opID: "list" + op + kind + "ForAllNamespaces", action: "list",
					desc: "list or watch objects of kind " + kind, params: join([]param{pPretty}, listParams),
					produces:  append(append([]string{}, jsonTypes...), "application/json;stream=watch"),
					responses: []response{{200, "OK", r.List}}})
			}
		case "create":
			add(&route{method: "POST", path: coll, opID: "create" + op + scope + kind, action: "post",
				desc: "create a " + kind, params: join(nsParams, writes(body("")), nil), consumes: jsonTypes,
				reqBody: obj, responses: objResp(200, 201, 202)})
		case "update":
			add(&route{method: "PUT", path: item, opID: "replace" + op + scope + kind, action: "put",
				desc: "replace the specified " + kind, params: join(itemParams, writes(body(""))), consumes: jsonTypes,
				reqBody: obj, responses: objResp(200, 201)})
		case "patch":
			add(&route{method: "PATCH", path: item, opID: "patch" + op + scope + kind, action: "patch",
				desc: "partially update the specified " + kind, params: join(itemParams, writes(pForce, body(""))), consumes: patchTypes,
				reqBody: &metav1.Patch{}, responses: objResp(200, 201)})
		case "delete":
			add(&route{method: "DELETE", path: item, opID: "delete" + op + scope + kind, action: "delete",
				desc: "delete a " + kind, params: join(itemParams, []param{pPretty}, deleteParams, []param{{name: "body", dataType: "object", kind: common.BodyParameterKind}}),
				consumes: jsonTypes, reqBody: &metav1.DeleteOptions{},
				responses: []response{{200, "OK", obj}, {202, "Accepted", obj}}})
		case "deletecollection":
			add(&route{method: "DELETE", path: coll, opID: "delete" + op + "Collection" + scope + kind, action: "deletecollection",
				desc: "delete collection of " + kind, params: join(nsParams, []param{pPretty}, deleteParams, listParams[1:len(listParams)-1], []param{{name: "body", dataType: "object", kind: common.BodyParameterKind}}),
				consumes: jsonTypes, reqBody: &metav1.DeleteOptions{},
				responses: []response{{200, "OK", &metav1.Status{}}}})
		case "watch":
			// served by list with ?watch=true, as kube-apiserver documents it
		default:
			return nil, fmt.Errorf("openapi: %s/%s: unknown verb %q", gv, r.Resource, verb)
		}
	}

	for _, name := range r.Subresources {
		sub, err := subresourceOf(name, r)
		if err != nil {
			return nil, err
		}
		subBody := sub.body
		if subBody == nil {
			subBody = obj
		}
		subGVK := sub.gvk
		path := item + "/" + name
		opName := op + scope + kind + upperFirst(name)
		for i, method := range sub.methods {
			rt := &route{method: method, path: path, action: sub.actions[i], produces: jsonTypes,
				responses: []response{{200, "OK", subBody}}}
			if subGVK.Kind != "" {
				rt.gvk = &subGVK
			}
			switch {
			case sub.actions[i] == "connect":
				rt.opID = "connect" + op + upperFirst(strings.ToLower(method)) + scope + kind + upperFirst(name)
				rt.desc = "connect " + method + " requests to " + name + " of " + kind
				rt.params = itemParams
				switch name {
				case "exec":
					rt.params = join(itemParams, execParams)
				case "attach":
					rt.params = join(itemParams, execParams[1:])
				case "portforward":
					rt.params = join(itemParams, []param{{name: "ports", desc: "List of ports to forward.", dataType: "integer", kind: common.QueryParameterKind, multiple: true}})
				}
				rt.produces = []string{"*/*"}
			case name == "log":
				rt.opID = "read" + opName
				rt.desc = "read log of the specified " + kind
				rt.params = join(itemParams, []param{pPretty}, logParams)
				rt.produces = textTypes
			case method == "GET":
				rt.opID = "read" + opName
				rt.desc = "read " + name + " of the specified " + kind
				rt.params = join(itemParams, []param{pPretty})
			case method == "PUT":
				rt.opID = "replace" + opName
				rt.desc = "replace " + name + " of the specified " + kind
				rt.params = join(itemParams, writes(body("")))
				rt.consumes, rt.reqBody = jsonTypes, subBody
				rt.responses = append(rt.responses, response{201, "Created", subBody})
			case method == "PATCH":
				rt.opID = "patch" + opName
				rt.desc = "partially update " + name + " of the specified " + kind
				rt.params = join(itemParams, writes(pForce, body("")))
				rt.consumes, rt.reqBody = patchTypes, &metav1.Patch{}
				rt.responses = append(rt.responses, response{201, "Created", subBody})
			case method == "POST":
				rt.opID = "create" + opName
				rt.desc = "create " + name + " of a " + kind
				rt.params = join(itemParams, writes(body("")))
				rt.consumes, rt.reqBody = jsonTypes, subBody
				rt.responses = append(rt.responses, response{201, "Created", subBody}, response{202, "Accepted", subBody})
			}
			routes = append(routes, rt)
		}
	}
	return routes, nil
}
