/* A job's bundle: the OCI runtime config crun reads (process, mounts,
 * namespaces, limits), the files it bind-mounts (hosts, resolv.conf,
 * hostname), the overlay's directories, and what the supervisor needs. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include "jumbo/run.h"

#define DEFAULT_PIDS 4096
#define CPU_PERIOD 100000

enum jb_cgroup_mode jb_cgroup_mode(void)
{
	struct statfs st;
	if (statfs("/sys/fs/cgroup", &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC)
		return JB_CGROUP_V2;
	if (statfs("/sys/fs/cgroup/unified", &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC)
		return JB_CGROUP_HYBRID;
	return JB_CGROUP_V1;
}

const char *jb_cgroup_mode_name(enum jb_cgroup_mode m)
{
	return m == JB_CGROUP_V2 ? "v2" : m == JB_CGROUP_HYBRID ? "hybrid (v1 controllers)" : "v1";
}

unsigned jb_gpu_count(void)
{
	if (access("/dev/nvidiactl", F_OK) < 0)
		return 0;
	unsigned n = 0;
	DIR *d = opendir("/dev");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		const char *p = de->d_name;
		if (strncmp(p, "nvidia", 6) || !p[6])
			continue;
		p += 6;
		while (*p >= '0' && *p <= '9')
			p++;
		if (!*p)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

void jb_job_spec_free(struct jb_job_spec *s)
{
	free(s->image);
	jb_oci_strv_free(s->args);
	jb_oci_strv_free(s->env);
	for (size_t i = 0; i < s->ndata; i++) {
		free(s->data[i].name);
		free(s->data[i].source);
		free(s->data[i].remote);
		free(s->data[i].local);
	}
	free(s->data);
	free(s->home);
	free(s->data_all);
	free(s->backend);
	memset(s, 0, sizeof *s);
}

static json_t *strv(char *const *v)
{
	json_t *a = json_array();
	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

/* A file of the bundle, made with mode (config.json holds the job's
 * environment: 0600; the files bind-mounted into the job: 0644). */
static int write_mode(const char *dir, const char *name, const char *text, mode_t mode, struct jb_error *err)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0 || jb_write_full(fd, text, strlen(text)) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return jb_err(err, e, "%s: %s", p, strerror(e));
	}
	close(fd);
	return 0;
}

/* one of the job's /etc files */
static int write_file(const char *dir, const char *name, const char *text, struct jb_error *err)
{
	return write_mode(dir, name, text, 0644, err);
}

static int dump(const char *dir, const char *name, json_t *j, struct jb_error *err)
{
	char *s = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	if (!s)
		return jb_oom(err);
	int r = write_mode(dir, name, s, 0600, err);
	free(s);
	return r;
}

/* The image's user: "uid[:gid]", "root", or a name in an /etc/passwd of its
 * layers (the top one that has the file). */
static int resolve_user(const char *user, char *const *layers, unsigned *uid, unsigned *gid, struct jb_error *err)
{
	*uid = *gid = 0;
	if (!user || !*user || !strcmp(user, "root"))
		return 0;
	char *end;
	unsigned long u = strtoul(user, &end, 10);
	if (end != user && (!*end || *end == ':')) {
		*uid = *gid = (unsigned)u;
		if (*end == ':')
			*gid = (unsigned)strtoul(end + 1, NULL, 10);
		return 0;
	}
	size_t n = 0;
	while (layers && layers[n])
		n++;
	for (size_t i = n; i-- > 0;) {
		char p[4200], line[1024];
		snprintf(p, sizeof p, "%s/etc/passwd", layers[i]);
		FILE *f = fopen(p, "re");
		if (!f)
			continue;
		size_t ul = strcspn(user, ":");
		while (fgets(line, sizeof line, f)) {
			if (strncmp(line, user, ul) || line[ul] != ':')
				continue;
			unsigned a, b;
			if (sscanf(line + ul, ":%*[^:]:%u:%u:", &a, &b) == 2) {
				*uid = a;
				*gid = b;
				fclose(f);
				return 0;
			}
		}
		fclose(f);
		break;
	}
	return jb_err(err, ENOENT, "the image's user '%s' is not in its /etc/passwd", user);
}

/* A notebook's /etc/passwd: the image's, with jovyan (1000:100, home
 * /home/jovyan) unless uid 1000 is there already. */
static int write_passwd(const char *dir, char *const *layers, struct jb_error *err)
{
	size_t n = 0, len = 0;
	while (layers && layers[n])
		n++;
	char *buf = calloc(1, 65536 + 256), p[4200], line[1024];
	if (!buf)
		return jb_oom(err);
	bool have = false;
	for (size_t i = n; i-- > 0;) {
		snprintf(p, sizeof p, "%s/etc/passwd", layers[i]);
		FILE *f = fopen(p, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof line, f) && len + strlen(line) < 65536) {
			unsigned u;
			if (sscanf(line, "%*[^:]:%*[^:]:%u:", &u) == 1 && u == JB_NOTEBOOK_UID)
				have = true;
			len += (size_t)sprintf(buf + len, "%s%s", line, strchr(line, '\n') ? "" : "\n");
		}
		fclose(f);
		break;
	}
	if (!len)
		len = (size_t)sprintf(buf, "root:x:0:0:root:/root:/bin/sh\n");
	if (!have)
		sprintf(buf + len, "jovyan:x:%u:%u:Jupyter user:" JB_NOTEBOOK_HOME ":/bin/bash\n", JB_NOTEBOOK_UID,
			JB_NOTEBOOK_GID);
	int r = write_file(dir, "passwd", buf, err);
	free(buf);
	return r;
}

static json_t *mount_of(const char *dst, const char *type, const char *src, const char *opts)
{
	json_t *o = json_array();
	char *dup = strdup(opts), *save = NULL;
	for (char *w = dup ? strtok_r(dup, ",", &save) : NULL; w; w = strtok_r(NULL, ",", &save))
		json_array_append_new(o, json_string(w));
	free(dup);
	return json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type", type, "source", src, "options", o);
}

/* Root's capabilities in a job: Podman's default set (Docker's without
 * CAP_NET_RAW, CAP_MKNOD and CAP_AUDIT_WRITE), what images expect of root
 * in a container (file owners and modes, its own users, low ports,
 * signals).  In a user namespace they reach only the job's own ids. */
static const char *const default_caps[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
	"CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT", NULL,
};

/* The seccomp profile: every call allowed but those a container's
 * default refuses (Docker's and Podman's profiles): the kernel's modules,
 * keyrings, clocks, swap, reboot, accounting and quotas; mounts and new
 * namespaces (unshare, setns, clone with a CLONE_NEW* flag); another
 * process's memory and handles (process_vm_*, kcmp, open_by_handle_at);
 * BPF, perf and userfaultfd; NUMA placement; the legacy and i/o-port
 * calls.  clone3 is ENOSYS, so that libc falls back to clone, whose
 * flags the filter can see. */
static const char *const refused_calls[] = {
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
	"finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy",
	"init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
	"mbind", "mount", "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
	"open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
	"process_vm_writev", "query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
	"set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon", "_sysctl", "sysfs", "umount",
	"umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old", NULL,
};

static json_t *bundle_seccomp(void)
{
	json_t *rules = json_pack("[{s:o, s:s, s:i}, {s:[s], s:s, s:i}]", "names", strv((char *const *)refused_calls),
				  "action", "SCMP_ACT_ERRNO", "errnoRet", EPERM, "names", "clone3", "action",
				  "SCMP_ACT_ERRNO", "errnoRet", ENOSYS);
	/* clone with any of the namespace flags: one rule per flag (a rule's
	 * conditions all hold together) */
	static const unsigned long newns[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
					      CLONE_NEWUSER, CLONE_NEWPID,   CLONE_NEWNET};
	for (size_t i = 0; rules && i < JB_ARRAY_SIZE(newns); i++)
		json_array_append_new(rules, json_pack("{s:[s], s:s, s:i, s:[{s:i, s:I, s:I, s:s}]}", "names", "clone",
						       "action", "SCMP_ACT_ERRNO", "errnoRet", EPERM, "args", "index", 0,
						       "value", (json_int_t)newns[i], "valueTwo", (json_int_t)newns[i],
						       "op", "SCMP_CMP_MASKED_EQ"));
	return rules ? json_pack("{s:s, s:o}", "defaultAction", "SCMP_ACT_ALLOW", "syscalls", rules) : NULL;
}

static bool env_has(json_t *env, const char *key, size_t klen)
{
	size_t i;
	json_t *v;
	json_array_foreach (env, i, v) {
		const char *s = json_string_value(v);
		if (s && !strncmp(s, key, klen) && s[klen] == '=')
			return true;
	}
	return false;
}

static void env_set(json_t *env, const char *kv)
{
	size_t klen = strcspn(kv, "=");
	size_t i;
	json_t *v;
	json_array_foreach (env, i, v) {
		const char *s = json_string_value(v);
		if (s && !strncmp(s, kv, klen) && s[klen] == '=') {
			json_array_set_new(env, i, json_string(kv));
			return;
		}
	}
	json_array_append_new(env, json_string(kv));
}

/* path as the machine that runs the job sees it */
static const char *mp(const struct jb_bundle_opts *o, const char *path, char *buf, size_t n)
{
	if (!o->map)
		return path;
	o->map(o->map_ud, path, buf, n);
	return buf;
}

/* The container's process: the command (the job's, else the image's
 * entrypoint and cmd), its user, environment and capabilities. */
static int bundle_process(const char *id, const struct jb_job_spec *spec, const struct jb_oci_image *img,
			  char *const *layers, json_t **ret, unsigned *ruid, unsigned *rgid, struct jb_error *err)
{
	json_t *args = json_array();
	for (char **a = img->c.entrypoint; a && *a; a++)
		json_array_append_new(args, json_string(*a));
	if (spec->args && spec->args[0])
		for (char *const *a = spec->args; *a; a++)
			json_array_append_new(args, json_string(*a));
	else
		for (char **a = img->c.cmd; a && *a; a++)
			json_array_append_new(args, json_string(*a));
	if (!json_array_size(args)) {
		json_decref(args);
		return jb_err(err, EINVAL, "%s has no command: give one after --", img->name);
	}
	unsigned uid = spec->uid, gid = spec->gid;
	int r = spec->user_set ? 0 : resolve_user(img->c.user, layers, &uid, &gid, err);
	if (r < 0) {
		json_decref(args);
		return r;
	}
	json_t *env = strv(img->c.env);
	if (!env_has(env, "PATH", 4))
		env_set(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	for (char *const *e = spec->env; e && *e; e++)
		env_set(env, *e);
	if (spec->home) {
		env_set(env, "HOME=" JB_NOTEBOOK_HOME);
		env_set(env, "USER=jovyan");
	}
	if (!env_has(env, "HOME", 4))
		env_set(env, uid == 0 ? "HOME=/root" : "HOME=/work");
	char jid[96];
	snprintf(jid, sizeof jid, "JUMBO_JOB_ID=%s", id);
	env_set(env, jid);
	/* capabilities: the default set for root, none for another user */
	json_t *caps = strv((char *const *)default_caps);
	json_t *capsobj = json_pack("{s:O, s:o, s:o, s:[], s:[]}", "bounding", caps, "effective",
				    uid == 0 ? json_copy(caps) : json_array(), "permitted",
				    uid == 0 ? json_copy(caps) : json_array(), "inheritable", "ambient");
	json_decref(caps);
	const char *cwd = spec->home ? JB_NOTEBOOK_HOME : img->c.workdir && img->c.workdir[0] == '/' ? img->c.workdir : "/work";
	*ret = json_pack("{s:b, s:{s:i, s:i}, s:o, s:o, s:s, s:o, s:[{s:s, s:i, s:i}], s:b}", "terminal", 0, "user", "uid",
			 (int)uid, "gid", (int)gid, "args", args, "env", env, "cwd", cwd, "capabilities", capsobj, "rlimits",
			 "type", "RLIMIT_NOFILE", "hard", 4096, "soft", 4096, "noNewPrivileges", 1);
	*ruid = uid;
	*rgid = gid;
	return *ret ? 0 : jb_oom(err);
}

/* The mounts: the kernel's file systems, the datasets read-only under
 * /data, the workspace at /work (its out/ made for the job's user), the
 * notebook's home, the bundle's own /etc files. */
static json_t *bundle_mounts(const char *dir, const char *id, const struct jb_job_spec *spec,
			     const struct jb_bundle_opts *o, unsigned uid, unsigned gid)
{
	char p[4200], q[4400];
	json_t *m = json_array();
	json_array_append_new(m, mount_of("/proc", "proc", "proc", "nosuid,noexec,nodev"));
	json_array_append_new(m, mount_of("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
	json_array_append_new(m, mount_of("/dev/pts", "devpts", "devpts",
					  "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
	json_array_append_new(m, mount_of("/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"));
	json_array_append_new(m, mount_of("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
	json_array_append_new(m, mount_of("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
	json_array_append_new(m, mount_of("/tmp", "tmpfs", "tmpfs", "nosuid,nodev,mode=1777"));
	for (size_t i = 0; i < spec->ndata; i++) {
		snprintf(p, sizeof p, "/data/%s", spec->data[i].name);
		json_array_append_new(m, mount_of(p, "bind", mp(o, spec->data[i].source, q, sizeof q), "rbind,ro,nosuid,nodev"));
	}
	if (spec->data_all)
		json_array_append_new(m, mount_of("/data", "bind", mp(o, spec->data_all, q, sizeof q), "rbind,ro,nosuid,nodev"));
	if (spec->home)
		json_array_append_new(m, mount_of(JB_NOTEBOOK_HOME, "bind", mp(o, spec->home, q, sizeof q), "rbind,rw,nosuid,nodev"));
	snprintf(p, sizeof p, "%s/workspace", dir);
	json_array_append_new(m, mount_of("/work", "bind", mp(o, p, q, sizeof q), "rbind,rw,nosuid,nodev"));
	/* /work and its out/ belong to the job's user, as the host numbers it */
	uid_t hu = o->ids ? o->id0 + uid : uid;
	gid_t hg = o->ids ? o->id0 + gid : gid;
	if (hu != 0 && chown(p, hu, hg) < 0)
		jb_log(JB_LOG_WARN, "job %s: cannot give /work to uid %u: %s", id, (unsigned)hu, strerror(errno));
	snprintf(q, sizeof q, "%s/workspace/out", dir);
	if ((mkdir(q, 0755) == 0 || errno == EEXIST) && hu != 0 && chown(q, hu, hg) < 0)
		jb_log(JB_LOG_WARN, "job %s: cannot give /work/out to uid %u: %s", id, (unsigned)hu, strerror(errno));
	static const char *const etc[] = {"hosts", "resolv.conf", "hostname", "passwd"};
	for (size_t i = 0; i < JB_ARRAY_SIZE(etc) - !spec->home; i++) {
		char dst[64];
		snprintf(p, sizeof p, "%s/%s", dir, etc[i]);
		snprintf(dst, sizeof dst, "/etc/%s", etc[i]);
		json_array_append_new(m, mount_of(dst, "bind", mp(o, p, q, sizeof q), "bind,ro"));
	}
	return m;
}

/* GPUs: NVIDIA device nodes and the driver's libraries, when asked */
static void bundle_gpus(const struct jb_job_spec *spec, json_t *m, json_t *res)
{
	json_t *devs = json_object_get(res, "devices");
	char dev[64], p[4200];
	for (unsigned g = 0; g < spec->gpus; g++) {
		snprintf(dev, sizeof dev, "/dev/nvidia%u", g);
		json_array_append_new(m, mount_of(dev, "bind", dev, "bind,nosuid,noexec"));
	}
	static const char *const ctl[] = {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"};
	for (size_t i = 0; i < JB_ARRAY_SIZE(ctl); i++)
		if (access(ctl[i], F_OK) == 0)
			json_array_append_new(m, mount_of(ctl[i], "bind", ctl[i], "bind,nosuid,noexec"));
	json_array_append_new(devs, json_pack("{s:b, s:s, s:I, s:s}", "allow", 1, "type", "c", "major", (json_int_t)195,
					      "access", "rwm"));
	struct stat uvm;
	if (stat("/dev/nvidia-uvm", &uvm) == 0 && S_ISCHR(uvm.st_mode))
		json_array_append_new(devs, json_pack("{s:b, s:s, s:I, s:s}", "allow", 1, "type", "c", "major",
						      (json_int_t)major(uvm.st_rdev), "access", "rwm"));
	DIR *d = opendir("/usr/lib/x86_64-linux-gnu");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "libcuda.so", 10) && strncmp(de->d_name, "libnvidia-ml.so", 15) &&
		    strncmp(de->d_name, "libnvidia-ptxjitcompiler.so", 27))
			continue;
		snprintf(p, sizeof p, "/usr/lib/x86_64-linux-gnu/%s", de->d_name);
		json_array_append_new(m, mount_of(p, "bind", p, "bind,ro,nosuid"));
	}
	if (d)
		closedir(d);
}

/* The limits: devices, pids, memory (no swap beyond it), CPU quota. */
static json_t *bundle_resources(const struct jb_job_spec *spec)
{
	json_t *res = json_pack("{s:[{s:b, s:s}], s:{s:I}}", "devices", "allow", 0, "access", "rwm", "pids", "limit",
				(json_int_t)(spec->pids ? spec->pids : DEFAULT_PIDS));
	if (res && spec->memory)
		json_object_set_new(res, "memory", json_pack("{s:I, s:I}", "limit", (json_int_t)spec->memory, "swap",
							     (json_int_t)spec->memory));
	if (res && spec->cpus > 0)
		json_object_set_new(res, "cpu", json_pack("{s:I, s:I}", "quota", (json_int_t)(spec->cpus * CPU_PERIOD),
							  "period", (json_int_t)CPU_PERIOD));
	return res;
}

/* The bundle's /etc files: hosts, resolv.conf, hostname (and a notebook's passwd). */
static int bundle_etc(const char *dir, const char *id, const struct jb_job_spec *spec, char *const *layers,
		      struct jb_error *err)
{
	char p[4200];
	/* its own names: without a network, no name server to wait for */
	snprintf(p, sizeof p, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n%s",
		 spec->veth && spec->address[0] ? spec->address : "127.0.1.1", id,
		 spec->veth ? JB_SITE_ADDRESS "\tjumbo-host\n" : "");
	int r = write_file(dir, "hosts", p, err);
	if (r < 0 || (spec->home && (r = write_passwd(dir, layers, err)) < 0))
		return r;
	if (spec->veth) {
		r = write_file(dir, "resolv.conf",
			       "# a network of its own: the host (jumbo-host, in /etc/hosts) and nothing beyond\n"
			       "options timeout:1 attempts:1\n",
			       err);
	} else if (spec->network) {
		char *rc = NULL;
		FILE *f = fopen("/etc/resolv.conf", "re");
		size_t n = 0;
		if (f) {
			rc = calloc(1, 16384);
			n = rc ? fread(rc, 1, 16383, f) : 0;
			fclose(f);
		}
		r = write_file(dir, "resolv.conf", rc && n ? rc : "options timeout:1 attempts:1\n", err);
		free(rc);
	} else {
		r = write_file(dir, "resolv.conf", "# no network in this job\noptions timeout:1 attempts:1\n", err);
	}
	snprintf(p, sizeof p, "%s\n", id);
	return r < 0 ? r : write_file(dir, "hostname", p, err);
}

int jb_bundle_make(const char *dir, const char *id, const struct jb_job_spec *spec, const struct jb_oci_image *img,
		   char *const *layers, const struct jb_bundle_opts *o, struct jb_error *err)
{
	char p[4200], q[4400];
	static const char *const subdirs[] = {"upper", "work", "merged", "workspace"};
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return jb_err(err, errno, "%s: %s", dir, strerror(errno));
	/* in a user namespace the job's root passes through its directory to
	 * the root and the files it mounts (group: the job's root, 0710); the
	 * overlay's upper layer is the job's root's */
	if (o->ids && (chown(dir, (uid_t)-1, o->id0) < 0 || chmod(dir, 0710) < 0))
		return jb_err(err, errno, "%s: %s", dir, strerror(errno));
	for (size_t i = 0; i < JB_ARRAY_SIZE(subdirs); i++) {
		snprintf(p, sizeof p, "%s/%s", dir, subdirs[i]);
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return jb_err(err, errno, "%s: %s", p, strerror(errno));
		if (o->ids && i < 2 && chown(p, o->id0, o->id0) < 0)
			return jb_err(err, errno, "%s: %s", p, strerror(errno));
	}
	json_t *process;
	unsigned uid = 0, gid = 0;
	int r = bundle_process(id, spec, img, layers, &process, &uid, &gid, err);
	if (r < 0)
		return r;
	json_t *m = bundle_mounts(dir, id, spec, o, uid, gid);
	/* namespaces: everything of its own, the network too unless asked */
	json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}, {s:s}]", "type", "pid", "type", "mount", "type", "ipc",
			       "type", "uts", "type", "cgroup");
	if (spec->veth && spec->netns[0])
		json_array_append_new(ns, json_pack("{s:s, s:s}", "type", "network", "path", spec->netns));
	else if (!spec->network)
		json_array_append_new(ns, json_pack("{s:s}", "type", "network"));
	if (o->ids)
		json_array_append_new(ns, json_pack("{s:s}", "type", "user"));
	json_t *res = bundle_resources(spec);
	if (spec->gpus && res)
		bundle_gpus(spec, m, res);
	char cg[128];
	snprintf(cg, sizeof cg, "/jumbo/%s", id);
	snprintf(p, sizeof p, "%s/merged", dir);
	json_t *cfg = json_pack(
		"{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:{s:s, s:o, s:o, s:[sssssssssss], s:[sssss]}}", "ociVersion", "1.0.2",
		"process", process, "root", "path", mp(o, p, q, sizeof q), "readonly", 0, "hostname", id, "mounts", m,
		"linux", "cgroupsPath", cg, "namespaces", ns, "resources", res, "maskedPaths", "/proc/acpi",
		"/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap", "readonlyPaths",
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger");
	json_t *lx = json_object_get(cfg, "linux");
	if (lx && o->ids) {
		json_t *map = json_pack("[{s:i, s:I, s:I}]", "containerID", 0, "hostID", (json_int_t)o->id0, "size",
					(json_int_t)o->ids);
		json_object_set(lx, "uidMappings", map);
		json_object_set_new(lx, "gidMappings", map);
	}
	if (!cfg || !lx || json_object_set_new(lx, "seccomp", bundle_seccomp()) < 0) {
		json_decref(cfg);
		return jb_oom(err);
	}
	if ((r = dump(dir, "config.json", cfg, err)) < 0 || (r = bundle_etc(dir, id, spec, layers, err)) < 0)
		return r;
	/* what the supervisor needs: lower directories top first */
	json_t *lower = json_array();
	size_t n = 0;
	while (layers && layers[n])
		n++;
	for (size_t i = n; i-- > 0;)
		json_array_append_new(lower, json_string(mp(o, layers[i], q, sizeof q)));
	char croot[4400];
	json_t *sup = json_pack("{s:s, s:s, s:s, s:i, s:o, s:f, s:I, s:I, s:I, s:I}", "id", id, "crun", o->crun, "crun_root",
				mp(o, o->crun_root, croot, sizeof croot), "cgroups", (int)o->cgroups, "lower", lower, "timeout", spec->timeout,
				"memory", (json_int_t)spec->memory, "id0", (json_int_t)o->id0, "ids", (json_int_t)o->ids,
				"log_max", (json_int_t)o->log_max);
	return sup ? dump(dir, "supervise.json", sup, err) : jb_oom(err);
}
