/**
 * The fleet file (`fleet.yaml`, JSON also accepted): its schema, loading with line-numbered errors, device tokens,
 * and edits that keep the user's comments. One module the CLI, the API and the broker all read the same way.
 *
 * - {@link loadFleetConfig} / {@link parseFleetConfig}: validate, fill defaults, normalise board aliases.
 * - {@link generateToken} / {@link hashToken} / {@link verifyToken}: scrypt-hashed device tokens.
 * - {@link addDeviceToFleetFile} / {@link removeDeviceFromFleetFile}: `ganglion device add|remove`.
 * - {@link starterFleetYaml}: what `ganglion init` writes.
 */
export {
  type AddedDevice,
  addDeviceToFleetFile,
  addDeviceToFleetText,
  FleetEditError,
  type NewDevice,
  parseDeviceInput,
  parseTokensFile,
  removeDeviceFromFleetFile,
  removeDeviceFromFleetText,
} from "./config/edit.ts";
export { FleetConfigError, type FleetIssue, formatIssue } from "./config/errors.ts";
export {
  loadFleetConfig,
  type ParsedFleet,
  parseFleet,
  parseFleetConfig,
  readFleetText,
} from "./config/parse.ts";
export {
  ACTUATOR_KINDS,
  type ActuatorConfig,
  type ActuatorKind,
  BOARD_ALIASES,
  BOARD_KINDS,
  type BoardKind,
  type DeviceConfig,
  type DeviceInput,
  DeviceSchema,
  type FleetConfig,
  FleetConfigSchema,
  type HubSettings,
  ID_PATTERN,
  type LinkConfig,
  type MqttLinkConfig,
  normaliseBoardKind,
  RESERVED_IDS,
  SENSOR_KINDS,
  type SensorConfig,
  type SensorKind,
  type SerialLinkConfig,
} from "./config/schema.ts";
export { starterFleetYaml } from "./config/starter.ts";
export { generateToken, hashToken, SCRYPT_PARAMS, verifyToken } from "./config/tokens.ts";
