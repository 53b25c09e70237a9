import type { ApolloServerPlugin } from '@apollo/server';
import type { GraphQLError, GraphQLFormattedError } from 'graphql';
import { ErrorCode, domainCodeOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { GatewayContext } from './context.js';
import { answeredWithCode } from './public-codes.js';

/** What a client reads instead of an error that carries none of the public codes, in production. */
export const MASKED_MESSAGE = 'Internal server error';
/** A failed step's error is the Service's or the Plugin's own text: the flow record keeps it. */
export const STEP_FAILED_MESSAGE = 'A step of the flow failed; its cause is on the flow record';

const SUGGESTION = / ?Did you mean(.+?)\?$/;

/**
 * What clients see of errors. A domain error (one of the public codes) reaches them as raised; in
 * production anything else (a database error, a Service's URL, an environment variable's name, a
 * stack of code) becomes `Internal server error` with the code INTERNAL_SERVER_ERROR, and is logged
 * once, with the operation's name. The flow engine's own Action calls are not clients: their errors
 * are recorded on the step as they are.
 */
export class ClientErrors {
  constructor(private readonly options: { production: boolean; logger: Logger }) {}

  /** Field suggestions ("Did you mean …") name schema fields: off in production. */
  get hideSchemaDetails(): boolean {
    return this.options.production;
  }

  /** The error a client may read. */
  mask(error: GraphQLFormattedError): GraphQLFormattedError {
    if (!this.options.production) return error;
    const code = domainCodeOf(error);
    if (code === ErrorCode.STEP_FAILED) {
      // Which flow, and how it ended; the rest of its details are the failing Action's own.
      const { flowId, flowStatus } = error.extensions ?? {};
      return { ...error, message: STEP_FAILED_MESSAGE, extensions: { code, flowId, flowStatus } };
    }
    if (code) {
      // Which Plugin raised it is the gateway's business (@apollo/gateway adds `serviceName`), and
      // suggestions name the schema's fields and enum values (also in variables' coercion errors).
      const { serviceName: _plugin, ...extensions } = error.extensions ?? {};
      return { ...error, message: error.message.replace(SUGGESTION, ''), extensions };
    }
    return {
      message: MASKED_MESSAGE,
      ...(error.locations ? { locations: error.locations } : {}),
      ...(error.path ? { path: error.path } : {}),
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
    };
  }

  /**
   * Logs an error that is not a domain error nor a client's mistake answered with a code, with what
   * the log needs to find its request.
   */
  log(error: GraphQLError | Error, operationName: string | null | undefined) {
    if (domainCodeOf(error) || answeredWithCode(error)) return;
    const graphql = error as Partial<GraphQLError>;
    this.options.logger.error(
      {
        err: graphql.originalError ?? error,
        operationName: operationName ?? null,
        ...(graphql.path ? { path: graphql.path } : {}),
        ...(graphql.extensions?.code ? { code: graphql.extensions.code } : {}),
      },
      'operation error',
    );
  }

  /**
   * An error of an operation served outside Apollo Server (graphql-ws subscriptions), as a client may
   * read it; one Apollo Server already formatted (a plain object) was logged and masked there.
   */
  forClient(error: GraphQLError | GraphQLFormattedError, operationName: string | null | undefined) {
    if (!('toJSON' in error)) return error;
    this.log(error, operationName);
    return this.mask(error.toJSON());
  }

  /** Validation errors as a client may read them (suggestions removed in production). */
  validationErrors<T extends GraphQLError>(errors: readonly T[]): readonly T[] {
    if (this.hideSchemaDetails)
      for (const error of errors) error.message = error.message.replace(SUGGESTION, '');
    return errors;
  }

  /** For Apollo Server: logs and masks the errors of client operations. */
  plugin(): ApolloServerPlugin<GatewayContext> {
    return {
      contextCreationDidFail: async ({ error }) => this.log(error, undefined),
      requestDidStart: async ({ contextValue }) => {
        if (contextValue.internal) return undefined;
        return {
          didEncounterErrors: async ({ errors, operationName, request }) => {
            for (const error of errors) this.log(error, operationName ?? request.operationName);
          },
          willSendResponse: async ({ response }) => {
            if (!this.options.production || response.body.kind !== 'single') return;
            const result = response.body.singleResult;
            if (result.errors)
              response.body.singleResult = { ...result, errors: result.errors.map((e) => this.mask(e)) };
          },
        };
      },
    };
  }
}
