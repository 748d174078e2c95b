// CONFIG interface: what this server is and offers.

#include <spdlog/spdlog.h>

#include "ndmpd/dispatch.h"
#include "ndmpd/handlers/build.h"
#include "ndmpd/offload.h"

namespace ndmpd {
namespace {

namespace asio = boost::asio;
using ndmp::xdr::Void;

Reply get_host_info(SessionContext& s, const Void&) {
  const HostInfo& h = s.server.host;
  ndmp4_config_get_host_info_reply rep{};
  rep.error = NDMP4_NO_ERR;
  rep.hostname = build::str(h.hostname);
  rep.os_type = build::str(h.os_type);
  rep.os_vers = build::str(h.os_vers);
  rep.hostid = build::str(h.hostid);
  return Reply::with(rep);
}

ndmp4_auth_type wire_method(AuthMethod m) {
  switch (m) {
    case AuthMethod::kNone:
      return NDMP4_AUTH_NONE;
    case AuthMethod::kText:
      return NDMP4_AUTH_TEXT;
    case AuthMethod::kMd5:
      return NDMP4_AUTH_MD5;
  }
  return NDMP4_AUTH_NONE;
}

Reply get_server_info(SessionContext& s, const Void&) {
  const Config& c = s.server.config;
  std::vector<ndmp4_auth_type> methods;
  for (AuthMethod m : c.auth_methods) methods.push_back(wire_method(m));
  ndmp4_config_get_server_info_reply rep{};
  rep.error = NDMP4_NO_ERR;
  rep.vendor_name = build::str(c.vendor);
  rep.product_name = build::str(c.product);
  rep.revision_number = build::str(c.revision);
  build::array(rep.auth_type.auth_type_len, rep.auth_type.auth_type_val, methods);
  return Reply::with(rep);
}

Reply get_connection_type(SessionContext&, const Void&) {
  std::vector<ndmp4_addr_type> types = {NDMP4_ADDR_LOCAL, NDMP4_ADDR_TCP};
  ndmp4_config_get_connection_type_reply rep{};
  rep.error = NDMP4_NO_ERR;
  build::array(rep.addr_types.addr_types_len, rep.addr_types.addr_types_val, types);
  return Reply::with(rep);
}

Reply get_auth_attr(SessionContext& s, const ndmp4_config_get_auth_attr_request& req) {
  ndmp4_config_get_auth_attr_reply rep{};
  rep.server_attr.auth_type = NDMP4_AUTH_NONE;
  std::optional<AuthMethod> method;
  switch (req.auth_type) {
    case NDMP4_AUTH_NONE:
      method = AuthMethod::kNone;
      break;
    case NDMP4_AUTH_TEXT:
      method = AuthMethod::kText;
      break;
    case NDMP4_AUTH_MD5:
      method = AuthMethod::kMd5;
      break;
  }
  if (!method || !s.server.config.allows(*method)) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    return Reply::with(rep);
  }
  rep.server_attr.auth_type = req.auth_type;
  if (*method == AuthMethod::kMd5) {
    // A fresh challenge for every request; CLIENT_AUTH checks against the
    // most recent one.
    s.state.challenge = make_challenge();
    if (!s.state.challenge) {
      spdlog::error("{} no random bytes for an MD5 challenge", s.tag());
      rep.error = NDMP4_UNDEFINED_ERR;
      rep.server_attr.auth_type = NDMP4_AUTH_NONE;
      return Reply::with(rep);
    }
    std::memcpy(rep.server_attr.ndmp4_auth_attr_u.challenge, s.state.challenge->data(), 64);
  }
  rep.error = NDMP4_NO_ERR;
  return Reply::with(rep);
}

Reply get_butype_info(SessionContext& s, const Void&) {
  const std::vector<Butype>& butypes = s.server.butypes.all();
  std::vector<std::vector<ndmp4_pval>> envs;
  std::vector<ndmp4_butype_info> infos;
  envs.reserve(butypes.size());
  for (const Butype& b : butypes) {
    envs.push_back(build::pvals(b.default_env));
    ndmp4_butype_info info{};
    info.butype_name = build::str(b.name);
    build::array(info.default_env.default_env_len, info.default_env.default_env_val, envs.back());
    info.attrs = b.attrs;
    infos.push_back(info);
  }
  ndmp4_config_get_butype_info_reply rep{};
  rep.error = NDMP4_NO_ERR;
  build::array(rep.butype_info.butype_info_len, rep.butype_info.butype_info_val, infos);
  return Reply::with(rep);
}

asio::awaitable<Reply> get_fs_info(SessionContext& s, const Void&) {
  const std::vector<Export>& exports = s.server.config.exports;
  const std::vector<FsInfo> fss =
      co_await offload(s.server.workers, [&] { return fs_info(exports); });
  std::vector<std::vector<ndmp4_pval>> envs;
  std::vector<ndmp4_fs_info> infos;
  envs.reserve(fss.size());
  for (const FsInfo& f : fss) {
    envs.push_back(build::pvals(f.env));
    ndmp4_fs_info info{};
    info.unsupported = f.unsupported;
    info.fs_type = build::str(f.fs_type);
    info.fs_logical_device = build::str(f.logical_device);
    info.fs_physical_device = build::str(f.physical_device);
    info.total_size = f.total_size;
    info.used_size = f.used_size;
    info.avail_size = f.avail_size;
    info.total_inodes = f.total_inodes;
    info.used_inodes = f.used_inodes;
    build::array(info.fs_env.fs_env_len, info.fs_env.fs_env_val, envs.back());
    info.fs_status = build::str(f.status);
    infos.push_back(info);
  }
  ndmp4_config_get_fs_info_reply rep{};
  rep.error = NDMP4_NO_ERR;
  build::array(rep.fs_info.fs_info_len, rep.fs_info.fs_info_val, infos);
  co_return Reply::with(rep);
}

// Fills `out` with one ndmp4_device_info per device; `caps` and `pvals`
// hold what the entries point at.
void describe(const std::vector<DeviceDescription>& devices, std::vector<ndmp4_device_info>& out,
              std::vector<ndmp4_device_capability>& caps,
              std::vector<std::vector<ndmp4_pval>>& pvals) {
  caps.reserve(devices.size());
  pvals.reserve(devices.size());
  for (const DeviceDescription& d : devices) {
    pvals.push_back(build::pvals(d.capabilities));
    ndmp4_device_capability cap{};
    cap.device = build::str(d.name);
    cap.attr = d.attr;
    build::array(cap.capability.capability_len, cap.capability.capability_val, pvals.back());
    caps.push_back(cap);
  }
  for (std::size_t i = 0; i < devices.size(); ++i) {
    ndmp4_device_info info{};
    info.model = build::str(devices[i].model);
    info.caplist.caplist_len = 1;
    info.caplist.caplist_val = &caps[i];
    out.push_back(info);
  }
}

Reply get_tape_info(SessionContext& s, const Void&) {
  std::vector<ndmp4_device_info> infos;
  std::vector<ndmp4_device_capability> caps;
  std::vector<std::vector<ndmp4_pval>> pvals;
  describe(s.server.tapes, infos, caps, pvals);
  ndmp4_config_get_tape_info_reply rep{};
  rep.error = NDMP4_NO_ERR;
  build::array(rep.tape_info.tape_info_len, rep.tape_info.tape_info_val, infos);
  return Reply::with(rep);
}

Reply get_scsi_info(SessionContext& s, const Void&) {
  std::vector<ndmp4_device_info> infos;
  std::vector<ndmp4_device_capability> caps;
  std::vector<std::vector<ndmp4_pval>> pvals;
  describe(s.server.changers, infos, caps, pvals);
  ndmp4_config_get_scsi_info_reply rep{};
  rep.error = NDMP4_NO_ERR;
  build::array(rep.scsi_info.scsi_info_len, rep.scsi_info.scsi_info_val, infos);
  return Reply::with(rep);
}

// Extension negotiation (draft-skardal-ndmpv4-04, 2.8 and 3.2.10/11): GET
// lists the classes with their versions, the first being the default; one
// SET selects; afterwards both are refused with EXT_DANDN_ILLEGAL.
Reply get_ext_list(SessionContext& s, const Void&) {
  ndmp4_config_get_ext_list_reply rep{};
  if (s.state.ext_phase == ExtPhase::kSelected) {
    rep.error = NDMP4_EXT_DANDN_ILLEGAL_ERR;
    return Reply::with(rep);
  }
  const auto& classes = s.dispatcher.extension_classes();
  std::vector<std::vector<u_short>> versions;
  std::vector<ndmp4_class_list> list;
  versions.reserve(classes.size());
  for (const auto& [id, vs] : classes) {
    versions.emplace_back(vs.begin(), vs.end());
    ndmp4_class_list c{};
    c.class_id = id;
    build::array(c.class_version.class_version_len, c.class_version.class_version_val,
                 versions.back());
    list.push_back(c);
  }
  s.state.ext_phase = ExtPhase::kListed;
  rep.error = NDMP4_NO_ERR;
  build::array(rep.class_list.class_list_len, rep.class_list.class_list_val, list);
  return Reply::with(rep);
}

Reply set_ext_list(SessionContext& s, const ndmp4_config_set_ext_list_request& req) {
  ndmp4_config_set_ext_list_reply rep{};
  rep.error = NDMP4_NO_ERR;
  if (s.state.ext_phase == ExtPhase::kSelected) {
    rep.error = NDMP4_EXT_DANDN_ILLEGAL_ERR;
    return Reply::with(rep);
  }
  if (s.state.ext_phase == ExtPhase::kNotListed) {
    rep.error = NDMP4_PRECONDITION_ERR;  // GET_EXT_LIST must come first
    return Reply::with(rep);
  }
  const auto& classes = s.dispatcher.extension_classes();
  std::map<std::uint16_t, std::uint16_t> selected;
  for (u_int i = 0; i < req.ndmp4_selected_ext.ndmp4_selected_ext_len; ++i) {
    const ndmp4_class_version& cv = req.ndmp4_selected_ext.ndmp4_selected_ext_val[i];
    const auto it = classes.find(cv.class_id);
    if (it == classes.end()) {
      rep.error = NDMP4_CLASS_NOT_SUPPORTED_ERR;
    } else if (std::find(it->second.begin(), it->second.end(), cv.class_version) ==
               it->second.end()) {
      rep.error = NDMP4_VERSION_NOT_SUPPORTED_ERR;
    } else if (!selected.emplace(cv.class_id, cv.class_version).second) {
      rep.error = NDMP4_EXT_DUPL_CLASSES_ERR;
    }
    if (rep.error != NDMP4_NO_ERR) {
      // Nothing is selected; the DMA may try again.
      spdlog::info("{} SET_EXT_LIST refused: class {:#06x} version {}: error {}", s.tag(),
                   cv.class_id, cv.class_version, static_cast<int>(rep.error));
      return Reply::with(rep);
    }
  }
  s.state.extensions = std::move(selected);
  s.state.ext_phase = ExtPhase::kSelected;
  return Reply::with(rep);
}

}  // namespace

void register_config_handlers(Dispatcher& d) {
  d.on<NDMP4_CONFIG_GET_HOST_INFO>(get_host_info);
  d.on<NDMP4_CONFIG_GET_SERVER_INFO>(get_server_info);
  d.on<NDMP4_CONFIG_GET_CONNECTION_TYPE>(get_connection_type);
  d.on<NDMP4_CONFIG_GET_AUTH_ATTR>(get_auth_attr);
  d.on<NDMP4_CONFIG_GET_BUTYPE_INFO>(get_butype_info);
  d.on<NDMP4_CONFIG_GET_FS_INFO>(get_fs_info);
  d.on<NDMP4_CONFIG_GET_TAPE_INFO>(get_tape_info);
  d.on<NDMP4_CONFIG_GET_SCSI_INFO>(get_scsi_info);
  d.on<NDMP4_CONFIG_GET_EXT_LIST>(get_ext_list);
  d.on<NDMP4_CONFIG_SET_EXT_LIST>(set_ext_list);
}

}  // namespace ndmpd
