// The page is the phone: a WebRTC SIP phone (sip.js SimpleUser over Asterisk's websocket)
// shared by the agent desk and the supervisors' wallboard.
//
// `openPhone` returns the phone at once and connects and registers in the background; a
// lost connection is retried, each time waiting longer (1 s to 8 s), for as long as
// `wanted(phone)` says the page still wants this phone.
import { Web } from "/desk/vendor/sip.js/lib/index.js";

export function openPhone(sip, hooks) {
  let delay = 1000;
  const phone = new Web.SimpleUser(sip.ws, {
    aor: sip.uri,
    media: { constraints: { audio: true, video: false }, remote: { audio: hooks.audio } },
    userAgentOptions: {
      authorizationUsername: sip.user,
      authorizationPassword: sip.password,
      displayName: hooks.displayName,
      sessionDescriptionHandlerFactoryOptions: { peerConnectionConfiguration: { iceServers: [] } },
    },
    delegate: {
      onCallReceived: () => hooks.onCall(),
      onCallAnswered: () => hooks.onAnswered(),
      onCallHangup: () => hooks.onHangup(),
      onRegistered: () => { delay = 1000; hooks.onLink("registered"); },
      onUnregistered: () => hooks.onLink("unregistered"),
      onServerDisconnect: () => {
        hooks.onLink("down");
        retry();
      },
    },
  });

  function retry() {
    setTimeout(() => {
      if (!hooks.wanted(phone)) return;
      delay = Math.min(delay * 2, 8000);
      connect();
    }, delay);
  }

  async function connect() {
    try {
      await phone.connect();
      await phone.register();
    } catch (err) {
      hooks.note(`sip: ${err.message}`);
      retry();
    }
  }

  connect();
  return phone;
}

// Audio packets each way of the phone's call so far, or null without a call (the tests
// read it; an ops person may too, in the console).
export async function rtpStats(phone) {
  const pc = phone && phone.session && phone.session.sessionDescriptionHandler
    && phone.session.sessionDescriptionHandler.peerConnection;
  if (!pc) return null;
  const out = { inbound: 0, outbound: 0 };
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") out.inbound += s.packetsReceived;
    if (s.type === "outbound-rtp" && s.kind === "audio") out.outbound += s.packetsSent;
  });
  return out;
}
