// Reports how the host calls Node-API where Bare and Node differ (issue 26), so a host that
// changes is seen: the order of a threadsafe function's finalize arguments, and what removing a
// never-added env cleanup hook does. Self-contained (no headers): the few declarations below
// are copied from Node's js_native_api_types.h / node_api.h, which are C ABI and stable.
#include <stddef.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef struct napi_threadsafe_function__ *napi_threadsafe_function;
typedef int napi_status; // napi_ok == 0
typedef napi_value (*napi_callback)(napi_env, napi_callback_info);
typedef void (*napi_finalize)(napi_env, void *finalize_data, void *finalize_hint);
typedef void (*napi_threadsafe_function_call_js)(napi_env, napi_value, void *, void *);

napi_status napi_create_string_utf8(napi_env, const char *, size_t, napi_value *);
napi_status napi_create_int32(napi_env, int, napi_value *);
napi_status napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
napi_status napi_set_named_property(napi_env, napi_value, const char *, napi_value);
napi_status napi_create_threadsafe_function(napi_env, napi_value, napi_value, napi_value, size_t, size_t,
                                            void *, napi_finalize, void *, napi_threadsafe_function_call_js,
                                            napi_threadsafe_function *);
napi_status napi_release_threadsafe_function(napi_threadsafe_function, int); // 0 = napi_tsfn_release
napi_status napi_remove_env_cleanup_hook(napi_env, void (*)(void *), void *);

// Two distinct tags: which one arrives as the finalizer's second argument names the order.
static char finalize_data_tag, context_tag;
static const char *order = "pending";

// No JS here: Bare calls this without a HandleScope.
static void finalize(napi_env env, void *a, void *b) {
  (void) env;
  if (a == &finalize_data_tag && b == &context_tag) order = "node-api";
  else if (a == &context_tag && b == &finalize_data_tag) order = "swapped";
  else order = "unknown";
}

static void call_js(napi_env env, napi_value fn, void *context, void *data) {
  (void) env, (void) fn, (void) context, (void) data;
}

static napi_value string(napi_env env, const char *s) {
  napi_value v = NULL;
  napi_create_string_utf8(env, s, (size_t) -1, &v); // NAPI_AUTO_LENGTH
  return v;
}

// startTsfn(): creates a threadsafe function and releases it; its finalizer runs later on the loop.
static napi_value start_tsfn(napi_env env, napi_callback_info info) {
  (void) info;
  napi_threadsafe_function tsfn = NULL;
  napi_status s = napi_create_threadsafe_function(env, NULL, NULL, string(env, "probe"), 0, 1, &finalize_data_tag,
                                                  finalize, &context_tag, call_js, &tsfn);
  if (s == 0) s = napi_release_threadsafe_function(tsfn, 0);
  napi_value v = NULL;
  napi_create_int32(env, s, &v);
  return v;
}

// tsfnFinalizeOrder(): 'pending' until the finalizer ran, then 'node-api' | 'swapped' | 'unknown'.
static napi_value tsfn_finalize_order(napi_env env, napi_callback_info info) {
  (void) info;
  return string(env, order);
}

static void never_added(void *arg) { (void) arg; }

// removeUnknownCleanupHook(): Node returns napi_ok (0); Bare 1.31-1.33 aborts the process.
static napi_value remove_unknown_cleanup_hook(napi_env env, napi_callback_info info) {
  (void) info;
  napi_value v = NULL;
  napi_create_int32(env, napi_remove_env_cleanup_hook(env, never_added, &order), &v);
  return v;
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn = NULL;
  napi_create_function(env, name, (size_t) -1, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  export_fn(env, exports, "startTsfn", start_tsfn);
  export_fn(env, exports, "tsfnFinalizeOrder", tsfn_finalize_order);
  export_fn(env, exports, "removeUnknownCleanupHook", remove_unknown_cleanup_hook);
  return exports;
}
