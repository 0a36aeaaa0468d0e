-- mailsight push script for Dovecot's Lua push_notification driver (Dovecot 2.3 and 2.4).
--
-- Unlike the OX driver (INBOX deliveries only), this sees every message event: MessageNew in
-- any folder (Sieve fileinto, +detail delivery), MessageAppend (IMAP APPEND, migrations, moves),
-- MessageExpunge, and FlagsSet / FlagsClear of the Junk / Not junk keywords that mail clients set
-- (the user's word on a verdict; other flag changes are not sent). It POSTs one JSON object per
-- event to mailsight:
--   {"driver":"lua","event":"MessageNew","user":"alice@example.org","folder":"INBOX",
--    "uidvalidity":1795249885,"uid":7,"message_id":"<...>","from":"...","subject":"..."}
--   {"driver":"lua","event":"FlagsSet","user":"alice@example.org","folder":"INBOX",
--    "uidvalidity":1795249885,"uid":7,"keywords":["$Junk"]}
--
-- Settings (Dovecot 2.3, in plugin { }):
--   push_notification_driver = lua:file=/etc/dovecot/mailsight/push.lua
--   mailsight_push_url = http://127.0.0.1:8080/push/dovecot
--   mailsight_push_user = dovecot
--   mailsight_push_password = <PUSH_PASSWORD>
-- Dovecot 2.4: see dovecot/2.4/90-mailsight-lua.conf (the same names under lua_settings).
-- Needs no Lua modules beyond what Dovecot ships.

local client = nil
local settings = {}

local function b64(data)
  local chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  return ((data:gsub('.', function(x)
    local r, byte = '', x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end

-- JSON string escaping: enough for the flat object this script sends.
local function json_string(s)
  s = tostring(s)
  s = s:gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    return map[c] or string.format('\\u%04x', c:byte())
  end)
  return '"' .. s .. '"'
end

local function json_value(v)
  if type(v) == 'number' then return string.format('%d', v) end
  if type(v) == 'table' then
    local items = {}
    for _, item in ipairs(v) do table.insert(items, json_string(item)) end
    return '[' .. table.concat(items, ',') .. ']'
  end
  return json_string(v)
end

local function json_object(t, keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if v ~= nil then table.insert(parts, json_string(k) .. ':' .. json_value(v)) end
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

local KEYS = { 'driver', 'event', 'user', 'folder', 'uidvalidity', 'uid', 'message_id', 'from', 'subject', 'keywords' }

-- The keywords clients set for Junk / Not junk (Thunderbird, Apple Mail, Roundcube), compared in
-- lower case as IMAP compares keywords. Only these flag changes are sent.
local JUNK_WORDS = { ['$junk'] = true, ['junk'] = true, ['$notjunk'] = true, ['notjunk'] = true, ['nonjunk'] = true }

-- The HTTP client's options: 2.3 takes its own names; 2.4 takes Dovecot's http_client_* settings
-- without the prefix, and refuses 2.3's names ("max_attempts is unknown setting").
local CLIENT_2_3 = { timeout = 2000, max_attempts = 1, user_agent = 'dovecot-push-lua' }
local CLIENT_2_4 = { request_timeout = '2s', request_max_attempts = 1, user_agent = 'dovecot-push-lua' }

function script_init(lua_settings)
  -- Dovecot 2.4 passes lua_settings here; 2.3 uses plugin_getenv per user (below).
  if type(lua_settings) == 'table' then settings = lua_settings end
  -- Delivery waits for us: never longer than 2 s, and no retry (a retry only doubles the wait;
  -- the sweep finds what a lost push missed).
  local ok, c = pcall(dovecot.http.client, CLIENT_2_3)
  if not ok then c = dovecot.http.client(CLIENT_2_4) end
  client = c
  -- 2.4 ignores this value (failures are raised with error()); 2.3 checks it.
  return 0
end

local function setting(user, name)
  return settings[name] or user:plugin_getenv(name)
end

function dovecot_lua_notify_begin_txn(user)
  local url = setting(user, 'mailsight_push_url')
  local auth = nil
  local u, p = setting(user, 'mailsight_push_user'), setting(user, 'mailsight_push_password')
  if u and u ~= '' and p and p ~= '' then auth = 'Basic ' .. b64(u .. ':' .. p) end
  return { user = user.username, url = url, auth = auth, events = {} }
end

local function queue(ctx, event, name)
  table.insert(ctx.events, {
    driver = 'lua',
    event = name,
    user = ctx.user,
    folder = event.mailbox,
    uidvalidity = event.uid_validity,
    uid = event.uid,
    message_id = event.message_id,
    from = event.from,
    subject = event.subject,
  })
end

local function queue_flags(ctx, event, name)
  local junk = {}
  for _, kw in ipairs(event.keywords or {}) do
    if JUNK_WORDS[string.lower(kw)] then table.insert(junk, kw) end
  end
  if #junk == 0 then return end
  table.insert(ctx.events, {
    driver = 'lua',
    event = name,
    user = ctx.user,
    folder = event.mailbox,
    uidvalidity = event.uid_validity,
    uid = event.uid,
    keywords = junk,
  })
end

function dovecot_lua_notify_event_message_new(ctx, event) queue(ctx, event, 'MessageNew') end
function dovecot_lua_notify_event_message_append(ctx, event) queue(ctx, event, 'MessageAppend') end
function dovecot_lua_notify_event_message_expunge(ctx, event) queue(ctx, event, 'MessageExpunge') end
function dovecot_lua_notify_event_flags_set(ctx, event) queue_flags(ctx, event, 'FlagsSet') end
function dovecot_lua_notify_event_flags_clear(ctx, event) queue_flags(ctx, event, 'FlagsClear') end

function dovecot_lua_notify_end_txn(ctx, success)
  -- success is false when the transaction did not commit: nothing happened, nothing to report.
  if success == false or ctx.url == nil or ctx.url == '' then return end
  for _, ev in ipairs(ctx.events) do
    local rq = client:request({ url = ctx.url, method = 'POST' })
    rq:add_header('Content-Type', 'application/json')
    if ctx.auth then rq:add_header('Authorization', ctx.auth) end
    rq:set_payload(json_object(ev, KEYS))
    local status = rq:submit():status()
    if status ~= 202 then
      dovecot.i_warning('mailsight push: ' .. ev.event .. ' ' .. ev.folder .. ' uid ' .. tostring(ev.uid) ..
        ' got HTTP ' .. tostring(status))
    end
  end
end
