import {
  Kind,
  type DefinitionNode,
  type DocumentNode,
  type InterfaceTypeDefinitionNode,
  type InterfaceTypeExtensionNode,
  type ObjectTypeDefinitionNode,
  type ObjectTypeExtensionNode,
} from 'graphql';

/** The object and interface types (and extensions) of a document: the definitions that carry fields. */
export type FieldedType =
  | ObjectTypeDefinitionNode
  | ObjectTypeExtensionNode
  | InterfaceTypeDefinitionNode
  | InterfaceTypeExtensionNode;

const isFieldedType = (definition: DefinitionNode): definition is FieldedType =>
  definition.kind === Kind.OBJECT_TYPE_DEFINITION ||
  definition.kind === Kind.OBJECT_TYPE_EXTENSION ||
  definition.kind === Kind.INTERFACE_TYPE_DEFINITION ||
  definition.kind === Kind.INTERFACE_TYPE_EXTENSION;

export const fieldedTypes = (document: DocumentNode): FieldedType[] =>
  document.definitions.filter(isFieldedType);
