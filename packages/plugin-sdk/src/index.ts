// The Plugin SDK's public surface: what a Plugin imports, and the contract the gateway builds on (the
// same types on both sides, so a Plugin and the Coordinator cannot disagree about them).
export {
  createActionContext,
  definePlugin,
  SIGNALS_EXTENSION,
  withPartialErrors,
  type ActionAccess,
  type ActionContext,
  type ActionIdentity,
  type Caller,
  type ConfigReader,
  type EmittedSignal,
  type FilterResult,
  type Plugin,
  type PluginDefinition,
  type PluginRuntime,
  type Route,
  type RouteRequest,
  type RouteResponse,
  type ServiceHealth,
  type Variation,
} from './plugin.js';
export {
  principalSchema,
  requireLearnerOrStaff,
  requirePrincipal,
  requireStaff,
  type Principal,
} from './principal.js';
export { readPluginEnv, type Env } from './config.js';
export { KEY_MAX_LENGTH } from './limits.js';
export {
  accessToken,
  clientCredentialsRequest,
  issuedTokenOf,
  type AccessToken,
  type IssuedToken,
} from './access-token.js';
export { jsonBodyOf, routeError, unfinishedFilterAnswer } from './route-answers.js';
export { serveSubgraph, type ServeSubgraphOptions, type SubgraphServer } from './serve.js';
export {
  ConfigError,
  DomainError,
  domainCodeOf,
  ErrorCode,
  httpStatusOf,
  isErrorCode,
  isTransient,
  UnreachableCaseError,
} from './errors.js';
